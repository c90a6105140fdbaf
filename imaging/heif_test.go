package imaging_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/pms-dev/pms/imaging"
)

func readHEIC(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("../testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestReadHeaderHEIF walks HEIC files: the size is the stored one (before
// the irot transform, which only turns it), and broken structure is
// refused before any decoder sees it.
func TestReadHeaderHEIF(t *testing.T) {
	heic := readHEIC(t, "dune.heic")
	bigISPE := append([]byte{}, heic...)
	binary.BigEndian.PutUint32(bigISPE[332+12:], 60000) // dune.heic's ispe width
	tests := []struct {
		name string
		data []byte
		w, h int
		code string
	}{
		{"heic", heic, 400, 640, ""},
		{"heic with irot", readHEIC(t, "dune-irot.heic"), 400, 640, ""},
		{"ispe grown", bigISPE, 60000, 640, ""},
		{"ftyp only", heic[:28], 0, 0, imaging.CodeCorrupt},
		{"cut in the meta box", heic[:100], 0, 0, imaging.CodeTruncated},
		{"cut in the mdat", heic[:len(heic)-10], 0, 0, imaging.CodeTruncated},
		{"no mdat", heic[:416], 0, 0, imaging.CodeTruncated},
		{"box size below its header", append(append([]byte{}, heic[:28]...), 0, 0, 0, 4, 'm', 'e', 't', 'a'), 0, 0, imaging.CodeCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := imaging.ReadHeader(tt.data)
			if tt.code != "" {
				if code := failureCodeOf(err); code != tt.code || !errors.Is(err, imaging.ErrPermanent) {
					t.Fatalf("ReadHeader() = %+v, %v; want permanent %s", got, err, tt.code)
				}
				return
			}
			if err != nil || got.Format != imaging.FormatHEIF || got.Width != tt.w || got.Height != tt.h || got.Frames != 1 {
				t.Fatalf("ReadHeader() = %+v, %v; want heif %d×%d", got, err, tt.w, tt.h)
			}
		})
	}
}

// TestFetchHEIF fetches a HEIC as the worker does: the size is checked
// from the meta box as soon as it arrives, against the limits.
func TestFetchHEIF(t *testing.T) {
	heic := readHEIC(t, "dune.heic")
	srv := startFetchServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/heic")
		_, _ = w.Write(heic)
	}))
	src, err := fetchLoopbackFetcher(t, imaging.FetchConfig{Timeout: 5 * time.Second}).Fetch(context.Background(), srv.URL+"/a.heic")
	if err != nil || src.Header.Format != imaging.FormatHEIF || src.Header.Width != 400 || len(src.Data) != len(heic) {
		t.Fatalf("Fetch(heic) = %+v, %v; want the 400×640 heif", src.Header, err)
	}
	small := imaging.Limits{MaxPixels: 1000, MaxSide: 100}
	_, err = fetchLimitedFetcher(t, imaging.FetchConfig{Timeout: 5 * time.Second}, small).Fetch(context.Background(), srv.URL+"/a.heic")
	fetchWantFailure(t, err, imaging.CodeTooManyPixels, true)
}
