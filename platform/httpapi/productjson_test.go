package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/pms-dev/pms/product"
)

// The types below are the product JSON types the handlers encoded with
// encoding/json until issue 9, kept as the reference appendProduct and
// appendPage must match byte for byte.

// refProduct is the public representation of a product as encoding/json
// wrote it before appendProduct: the reference its output must match.
type refProduct struct {
	ID                      uuid.UUID   `json:"id"`
	UserID                  uuid.UUID   `json:"user_id"`
	ProductName             string      `json:"product_name"`
	ProductDescription      string      `json:"product_description"`
	ProductPrice            json.Number `json:"product_price"`
	ProductImages           []string    `json:"product_images"`
	CompressedProductImages []string    `json:"compressed_product_images"`
	Images                  []refImage  `json:"images"`
	Version                 int         `json:"version"`
	CreatedAt               time.Time   `json:"created_at"`
	UpdatedAt               time.Time   `json:"updated_at"`
}

// refImage tells where one image is in processing. Its compressed_url,
// width, height, bytes and format are those of the main variant, as before
// variants were listed.
type refImage struct {
	Position      int          `json:"position"`
	SourceURL     string       `json:"source_url"`
	Status        string       `json:"status"`
	Attempts      int          `json:"attempts"`
	ErrorCode     string       `json:"error_code,omitempty"`
	CompressedURL string       `json:"compressed_url,omitempty"`
	Width         int          `json:"width,omitempty"`
	Height        int          `json:"height,omitempty"`
	Bytes         int64        `json:"bytes,omitempty"`
	Format        string       `json:"format,omitempty"`
	Variants      []refVariant `json:"variants"`
	// Srcset holds, by format, an HTML srcset of the variants in it.
	Srcset map[string]string `json:"srcset,omitempty"`
	// Source, ThumbHash and DominantColor are what a page needs before the
	// image loads, once the worker has seen the source.
	Source        *refSource `json:"source,omitempty"`
	ThumbHash     string     `json:"thumbhash,omitempty"`
	DominantColor string     `json:"dominant_color,omitempty"`
}

// refSource describes a source image: upright size, format and bytes.
type refSource struct {
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Format string `json:"format"`
	Bytes  int64  `json:"bytes"`
}

// refVariant is one compressed copy of an image. Sizes not recorded are
// left out.
type refVariant struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	Bytes  int64  `json:"bytes,omitempty"`
	Format string `json:"format"`
}

func refProductOf(p product.Product) refProduct {
	out := refProduct{
		ID: p.ID, UserID: p.UserID, ProductName: p.Name, ProductDescription: p.Description,
		ProductPrice: json.Number(p.Price.String()), ProductImages: p.SourceURLs(),
		CompressedProductImages: p.CompressedURLs(), Images: make([]refImage, len(p.Images)),
		Version: p.Version, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	for i, im := range p.Images {
		out.Images[i] = refImageOf(im)
	}
	return out
}

func refImageOf(im product.Image) refImage {
	out := refImage{
		Position: im.Position, SourceURL: im.SourceURL, Status: string(im.Status), Attempts: im.Attempts,
		ErrorCode: im.ErrorCode, Variants: make([]refVariant, len(im.Variants)),
	}
	if src := im.Source; src != nil {
		out.Source = &refSource{Width: src.Width, Height: src.Height, Format: src.Format, Bytes: src.Bytes}
		out.ThumbHash, out.DominantColor = src.ThumbHash, src.Color
	}
	if main, ok := im.Main(); ok {
		out.CompressedURL, out.Width, out.Height, out.Bytes, out.Format = main.URL, main.Width, main.Height, main.Bytes, main.Format
	}
	for i, v := range im.Variants {
		out.Variants[i] = refVariant{Name: v.Name, URL: v.URL, Width: v.Width, Height: v.Height, Bytes: v.Bytes, Format: v.Format}
		if _, done := out.Srcset[v.Format]; done {
			continue
		}
		if set := im.Srcset(v.Format); set != "" {
			if out.Srcset == nil {
				out.Srcset = map[string]string{}
			}
			out.Srcset[v.Format] = set
		}
	}
	return out
}

type refPage struct {
	Items      []refProduct `json:"items"`
	NextCursor *string      `json:"next_cursor"`
}

// TestAppendPageMatchesEncodingJSON: the hand-written encoder writes what
// encoding/json wrote for the reference types, byte for byte, for products
// with images in every state, with and without variants, sizes, source
// facts and placeholders, unusual text and prices, and for empty pages and
// pages with a cursor.
func TestAppendPageMatchesEncodingJSON(t *testing.T) {
	products := referenceProducts()
	next := &product.Cursor{CreatedAt: time.Date(2026, 12, 2, 15, 0, 0, 1, time.UTC), Price: 4990, Name: "Lampe <1>", ID: uuid.New()}
	pages := []struct {
		name string
		page product.Page
	}{
		{"empty", product.Page{}},
		{"empty with items slice", product.Page{Items: []product.Product{}}},
		{"all", product.Page{Items: products}},
		{"with cursor", product.Page{Items: products[:2], Next: next}},
	}
	for _, tt := range pages {
		t.Run(tt.name, func(t *testing.T) {
			got, err := appendPage(nil, tt.page)
			if err != nil {
				t.Fatalf("appendPage: %v", err)
			}
			if want := referencePage(t, tt.page); string(got) != string(want) {
				t.Errorf("appendPage =\n%s\nwant (encoding/json)\n%s", got, want)
			}
		})
	}
	for i, p := range products {
		got, err := appendProduct(nil, p)
		if err != nil {
			t.Fatalf("appendProduct(products[%d]): %v", i, err)
		}
		want, err := json.Marshal(refProductOf(p))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("appendProduct(products[%d]) =\n%s\nwant (encoding/json)\n%s", i, got, want)
		}
	}
}

// TestAppendProductRefusesTimesJSONRefuses: a time RFC 3339 cannot write
// fails the encoding, as it failed encoding/json's.
func TestAppendProductRefusesTimesJSONRefuses(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)),
	} {
		p := product.Product{ID: uuid.New(), CreatedAt: at, UpdatedAt: time.Now()}
		_, err := appendProduct(nil, p)
		_, refErr := json.Marshal(refProductOf(p))
		if (err == nil) != (refErr == nil) {
			t.Errorf("appendProduct with created_at %v: error %v, encoding/json's %v", at, err, refErr)
		}
	}
}

// TestWriteJSONPretty: ?pretty indents the body as c.JSON did.
func TestWriteJSONPretty(t *testing.T) {
	p := referenceProducts()[1]
	for _, target := range []string{"/p?pretty", "/p?pretty=1&x=2", "/p?prettyish=1", "/p"} {
		e := echo.New()
		rec := httptest.NewRecorder()
		c := e.NewContext(httptest.NewRequest(http.MethodGet, target, nil), rec)
		if err := writeProduct(c, http.StatusOK, p); err != nil {
			t.Fatal(err)
		}
		wantRec := httptest.NewRecorder()
		if err := e.NewContext(httptest.NewRequest(http.MethodGet, target, nil), wantRec).JSON(http.StatusOK, refProductOf(p)); err != nil {
			t.Fatal(err)
		}
		if rec.Body.String() != wantRec.Body.String() || rec.Header().Get("Content-Type") != wantRec.Header().Get("Content-Type") {
			t.Errorf("GET %s: writeProduct wrote %s (%s), c.JSON %s (%s)", target, rec.Body, rec.Header().Get("Content-Type"),
				wantRec.Body, wantRec.Header().Get("Content-Type"))
		}
	}
}

// FuzzAppendString: appendString escapes any string as encoding/json does.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "<a href=\"x\">&amp;</a>", "\x00\x01\x1f\x7f", "\b\f\n\r\t\\", "\u2028\u2029",
		"\xff\xfe", "caf\xc3", "Zoé «Nº 5» 日本語 🎉", "\ufffd", "\xed\xa0\x80",
		"https://cdn.example/products/0190f5a4-1b2c-7d3e/main.jpeg?a=1&b=<2>", "0123456\u2028abcdefgh\x7f01234567\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}

// TestAppendStringEveryByteEverywhere: appendString, which looks at eight
// bytes at a time first, escapes every byte value at every place of a
// string as encoding/json does, in a string of safe bytes and after an
// escape.
func TestAppendStringEveryByteEverywhere(t *testing.T) {
	for _, prefix := range []string{"", "&", "«Nº»"} {
		for c := range 256 {
			for at := range 20 {
				b := []byte(prefix + strings.Repeat("https://x.example/", 2))[:len(prefix)+20]
				b[len(prefix)+at] = byte(c)
				s := string(b)
				want, err := json.Marshal(s)
				if err != nil {
					t.Fatal(err)
				}
				if got := appendString(nil, s); !bytes.Equal(got, want) {
					t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
				}
			}
		}
	}
}

// referencePage is the body c.JSON wrote for page before appendPage.
func referencePage(t *testing.T, page product.Page) []byte {
	t.Helper()
	out := refPage{Items: make([]refProduct, len(page.Items))}
	for i, p := range page.Items {
		out.Items[i] = refProductOf(p)
	}
	if page.Next != nil {
		next := page.Next.String()
		out.NextCursor = &next
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(out); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// referenceProducts are products with every kind of content the encoder
// treats differently.
func referenceProducts() []product.Product {
	at := time.Date(2026, 11, 25, 22, 6, 44, 123456789, time.UTC)
	ladder := []product.Variant{
		{Name: "main", URL: "https://cdn.example.com/p/main.webp", Width: 1600, Height: 1200, Bytes: 183211, Format: "webp"},
		{Name: "thumbnail", URL: "https://cdn.example.com/p/thumb.webp", Width: 320, Height: 240, Bytes: 9876, Format: "webp"},
		{Name: "jpeg-320", URL: "https://cdn.example.com/p/j 320,a.jpg", Width: 320, Height: 240, Bytes: 12000, Format: "jpeg"},
		{Name: "jpeg-640", URL: "https://cdn.example.com/p/j640.jpg?a=1&b=<2>", Width: 640, Height: 480, Bytes: 40000, Format: "jpeg"},
		{Name: "jpeg-1600", URL: "https://cdn.example.com/p/j1600.jpg", Width: 1600, Height: 1200, Bytes: 183211, Format: "jpeg"},
		{Name: "jpeg-1024", URL: "https://cdn.example.com/p/é\u2028\xff.jpg", Width: 1024, Height: 768, Bytes: 90000, Format: "jpeg"},
		{Name: "webp-320", URL: "https://cdn.example.com/p/w320.webp", Width: 320, Height: 240, Bytes: 8000, Format: "webp"},
		{Name: "webp-640", URL: "https://cdn.example.com/p/w640.webp", Width: 640, Height: 480, Bytes: 30000, Format: "webp"},
		{Name: "avif-640", URL: "https://cdn.example.com/p/a640.avif", Width: 640, Height: 480, Bytes: 20000, Format: "avif"},
		{Name: "old", URL: "https://cdn.example.com/p/old.png", Format: "png"},
		{Name: "odd", URL: "https://cdn.example.com/p/\"quoted\"\\.gif", Width: 100, Format: "gif"},
	}
	source := &product.SourceFacts{Width: 4032, Height: 3024, Format: "jpeg", Bytes: 3_456_789, ThumbHash: "1QcSHQRnh493V4dIh4eXh1h4kJUI", Color: "#5a7d3c"}
	return []product.Product{
		{ID: uuid.New(), UserID: uuid.New(), Name: "", Description: "", Price: 0, Version: 1, CreatedAt: at, UpdatedAt: at},
		{ID: uuid.New(), UserID: uuid.New(), Name: "Schreibtischlampe «Nº 5» & <Zubehör> 日本語 🎉",
			Description: "Line\nbreak\ttab \"quote\" back\\slash \x00\x1f \b\f\r \u2028\u2029 \xff bad", Price: product.MaxPrice,
			Version: 1 << 40, CreatedAt: at, UpdatedAt: at.Add(time.Hour).Truncate(time.Second),
			Images: []product.Image{
				{ID: uuid.New(), Position: 0, SourceURL: "https://example.com/a.png", Status: product.ImageReady, Attempts: 1, Variants: ladder, Source: source, UpdatedAt: at},
				{ID: uuid.New(), Position: 1, SourceURL: "https://example.com/b.jpg", Status: product.ImagePending},
				{ID: uuid.New(), Position: 2, SourceURL: "https://example.com/c.jpg?x=<y>", Status: product.ImageFailed, Attempts: 3, ErrorCode: "source_not_found"},
				{ID: uuid.New(), Position: 3, SourceURL: "https://example.com/d.jpg", Status: product.ImageProcessing, Attempts: 2},
				{ID: uuid.New(), Position: 4, SourceURL: "https://example.com/e.jpg", Status: product.ImageReady, Attempts: 1,
					Variants: []product.Variant{{Name: "main", URL: "https://cdn.example.com/e.jpg", Format: "jpeg"}}},
				{ID: uuid.New(), Position: 5, SourceURL: "https://example.com/f.jpg", Status: product.ImageReady, Attempts: 1,
					Variants: []product.Variant{{Name: "main", URL: "https://cdn.example.com/f.jpg", Width: 800, Format: "jpeg"}},
					Source:   &product.SourceFacts{Width: 800, Height: 600, Format: "png"}},
				{ID: uuid.New(), Position: 6, SourceURL: "https://example.com/g.jpg", Status: product.ImageReady, Attempts: 1,
					Variants: []product.Variant{}, Source: &product.SourceFacts{ThumbHash: "abc"}},
			}},
		{ID: uuid.New(), UserID: uuid.New(), Name: "One cent", Price: 1, Version: 2, CreatedAt: at.In(time.FixedZone("IST", 5*3600+1800)),
			UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", -8*3600)),
			Images: []product.Image{{ID: uuid.New(), SourceURL: "https://example.com/only.jpg", Status: product.ImageReady, Attempts: 1,
				Variants: ladder[:1], Source: &product.SourceFacts{Width: 1, Height: 1, Format: "webp", Bytes: 1, Color: "#000000"}}}},
		{ID: uuid.New(), UserID: uuid.New(), Name: strings.Repeat("x", product.MaxNameLen), Description: strings.Repeat("ä", 500),
			Price: 123456, Version: 7, CreatedAt: time.Time{}.AddDate(1, 0, 0), UpdatedAt: at},
	}
}

// BenchmarkEncodePage encodes a page of 20 products with one image each,
// as make load seeds them (one variant) and as the default ladder makes
// them, with appendPage and with encoding/json on the former types
// (including their construction, as the handlers did).
func BenchmarkEncodePage(b *testing.B) {
	at := time.Date(2026, 12, 2, 14, 50, 56, 123456000, time.UTC)
	page := func(res func(id uuid.UUID) []product.Variant, source *product.SourceFacts) product.Page {
		var page product.Page
		for i := range product.DefaultLimit {
			id := uuid.New()
			page.Items = append(page.Items, product.Product{ID: id, UserID: uuid.New(), Name: fmt.Sprintf("Seeded product %d", i),
				Description: "Seeded for make load", Price: product.Price(1000 + i*150), Version: 2, CreatedAt: at, UpdatedAt: at,
				Images: []product.Image{{ID: uuid.New(), SourceURL: "https://images.example/" + id.String() + ".jpg", Status: product.ImageReady,
					Attempts: 1, Variants: res(id), Source: source, UpdatedAt: at}}})
		}
		return page
	}
	variant := func(id uuid.UUID, name string, width int, format string) product.Variant {
		return product.Variant{Name: name, URL: "https://cdn.example/products/" + id.String() + "/" + name + "." + format,
			Width: width, Height: width * 3 / 4, Bytes: int64(width * 90), Format: format}
	}
	one := func(id uuid.UUID) []product.Variant { return []product.Variant{variant(id, "main", 1600, "jpeg")} }
	ladder := func(id uuid.UUID) []product.Variant {
		vs := []product.Variant{variant(id, "main", 1600, "webp"), variant(id, "thumbnail", 320, "webp")}
		for _, f := range []string{"jpeg", "webp"} {
			for _, w := range []int{320, 640, 1024, 1600} {
				vs = append(vs, variant(id, fmt.Sprintf("%s-%d", f, w), w, f))
			}
		}
		return vs
	}
	source := &product.SourceFacts{Width: 4032, Height: 3024, Format: "jpeg", Bytes: 3_456_789, ThumbHash: "1QcSHQRnh493V4dIh4eXh1h4kJUI", Color: "#5a7d3c"}
	for _, tt := range []struct {
		name string
		page product.Page
	}{{"shape=one-variant", page(one, nil)}, {"shape=ladder", page(ladder, source)}} {
		var buf []byte
		b.Run(tt.name+"/encoder=append", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = appendPage(buf[:0], tt.page); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tt.name+"/encoder=encoding-json", func(b *testing.B) {
			b.ReportAllocs()
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				page := refPage{Items: make([]refProduct, len(tt.page.Items))}
				for i, p := range tt.page.Items {
					page.Items[i] = refProductOf(p)
				}
				if err := json.NewEncoder(&out).Encode(page); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
