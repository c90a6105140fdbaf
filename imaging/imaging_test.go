package imaging_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/imaging"
)

func TestObjectKey(t *testing.T) {
	id := uuid.MustParse("0195f5a4-1b2c-7d3e-8f40-123456789abc")
	const sum = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" // sha256("hello")
	for format, ext := range map[string]string{imaging.FormatJPEG: "jpg", imaging.FormatPNG: "png", imaging.FormatWebP: "webp"} {
		got := imaging.ObjectKey(id, imaging.Output{Data: []byte("hello"), Format: format})
		if want := "products/" + id.String() + "/" + sum + "." + ext; got != want {
			t.Errorf("ObjectKey(%s, hello, %s) = %q, want %q", id, format, got, want)
		}
	}
	a := imaging.ObjectKey(id, imaging.Output{Data: []byte("a"), Format: "png"})
	if b := imaging.ObjectKey(id, imaging.Output{Data: []byte("b"), Format: "png"}); a == b {
		t.Errorf("ObjectKey of different data = %q for both, want different keys", a)
	}
	if b := imaging.ObjectKey(uuid.New(), imaging.Output{Data: []byte("a"), Format: "png"}); a == b {
		t.Errorf("ObjectKey of different products = %q for both, want different keys", a)
	}
}
