package imaging_test

import (
	"testing"

	"github.com/pms-dev/pms/imaging"
)

func TestObjectKey(t *testing.T) {
	const sum = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" // sha256("hello")
	for format, ext := range map[string]string{imaging.FormatJPEG: "jpg", imaging.FormatPNG: "png", imaging.FormatWebP: "webp", imaging.FormatAVIF: "avif"} {
		got := imaging.ObjectKey(imaging.Output{Data: []byte("hello"), Format: format})
		if want := "images/" + sum + "." + ext; got != want {
			t.Errorf("ObjectKey(hello, %s) = %q, want %q", format, got, want)
		}
	}
	a := imaging.ObjectKey(imaging.Output{Data: []byte("a"), Format: "png"})
	if b := imaging.ObjectKey(imaging.Output{Data: []byte("b"), Format: "png"}); a == b {
		t.Errorf("ObjectKey of different data = %q for both, want different keys", a)
	}
	if b := imaging.ObjectKey(imaging.Output{Data: []byte("a"), Format: "webp"}); a == b {
		t.Errorf("ObjectKey of different formats = %q for both, want different keys", a)
	}
}
