package cmd

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var benchPhoto = flag.String("bench.photo", filepath.Join("..", "testdata", "rot6-Dune.jpg"),
	"the photo BenchmarkPostToCompressedURL posts")

// BenchmarkPostToCompressedURL measures, on the local stack (pms all with
// its development Kafka and S3), the time from POST of a product with one
// photo to the first GET that shows its compressed URL.
func BenchmarkPostToCompressedURL(b *testing.B) {
	if testing.Short() {
		b.Skip("integration benchmark: runs pms all")
	}
	photo, err := os.ReadFile(*benchPhoto)
	if err != nil {
		b.Fatal(err)
	}
	src := serveFiles(b, map[string][]byte{"photo.jpg": photo})
	s, _ := startAll(b, map[string]string{"PMS_LOG_LEVEL": "warn"})
	var took []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// A new query string makes each image a new task; the bytes are the same.
		body := fmt.Sprintf(`{"product_name":"Bench %d","product_price":1,"product_images":["%s/photo.jpg?n=%d"]}`, i, src, i)
		start := time.Now()
		var p e2eProduct
		if code := s.do(b, http.MethodPost, "/api/v1/products", body, "", &p); code != http.StatusCreated {
			b.Fatalf("POST = %d", code)
		}
		for len(p.CompressedProductImages) == 0 {
			if time.Since(start) > time.Minute {
				b.Fatalf("no compressed URL within a minute: %+v", p)
			}
			time.Sleep(5 * time.Millisecond)
			if code := s.do(b, http.MethodGet, "/api/v1/products/"+p.ID, "", "", &p); code != http.StatusOK {
				b.Fatalf("GET = %d", code)
			}
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[len(took)*99/100]), "p99-ms")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
