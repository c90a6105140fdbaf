package postgres_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/product"
)

// imagesColumns are images columns as PostgreSQL writes them
// (json_build_object puts " : " between keys and values, json_agg ", "
// between elements), with the variants and source as the worker stores
// them, and odd but valid JSON.
var imagesColumns = []string{
	`[]`,
	`null`,
	` [ ] `,
	`[{"id" : "0190f5a4-1b2c-7d3e-8f40-5a6b7c8d9e0f", "position" : 0, "source_url" : "https://images.example/a.jpg", "status" : "pending", "attempts" : 0, "error_code" : null, "updated_at" : "2026-12-02T14:50:56.123456+00:00", "variants" : null, "source" : null}]`,
	`[{"id" : "0190f5a4-1b2c-7d3e-8f40-5a6b7c8d9e0f", "position" : 0, "source_url" : "https://images.example/a.jpg", "status" : "ready", "attempts" : 1, "error_code" : null, "updated_at" : "2026-12-02T15:50:56.1+01:00", "variants" : [{"name":"main","url":"https://cdn.example/a.jpg","width":1600,"height":1200,"bytes":183211,"format":"jpeg"}], "source" : null}, ` +
		"\n " + `{"id" : "0190f5a4-1b2c-7d3e-8f40-5a6b7c8d9e10", "position" : 1, "source_url" : "https://images.example/b.jpg", "status" : "failed", "attempts" : 3, "error_code" : "source_not_found", "updated_at" : "2026-12-02T14:50:56Z", "variants" : null, "source" : null}]`,
	`[{"id":"0190f5a4-1b2c-7d3e-8f40-5a6b7c8d9e0f","position":2,"source_url":"https://images.example/\u00e9t\u00e9 \"1\"\\x.jpg","status":"ready","attempts":1,"updated_at":"2026-12-02T14:50:56.999999999-08:00",` +
		`"variants":[{"name":"main","url":"https://cdn.example/m.webp","width":1600,"height":1200,"bytes":81234,"format":"webp"},{"name":"thumbnail","url":"https://cdn.example/t.webp","width":null,"height":null,"bytes":null,"format":"webp"},{"name":"old","url":"https://cdn.example/o.png","format":"png"}],` +
		`"source":{"width":4032,"height":3024,"format":"jpeg","bytes":3456789,"thumbhash":"1QcSHQRnh493V4dIh4eXh1h4kJUI","color":"#5a7d3c"}}]`,
	`[{"ID":"0190f5a4-1b2c-7d3e-8f40-5a6b7c8d9e0f","Position":1,"SOURCE_URL":"https://x.example/é.jpg","Status":"ready","variants":[{"Name":"main","URL":"u","Width":1,"Height":2,"Bytes":3,"Format":"jpeg"}],"source":{"Width":1,"ThumbHash":"h","Color":"#fff"},"extra":{"a":[1,2.5e3,true,false,null,"s",{}],"b":-0.5e-400}}]`,
	`[{"variants":[],"source":{}},{},null]`,
	`[{"source":{"width":1},"source":{"height":2},"variants":[{"name":"a"}],"variants":[{"name":"b"}]}]`,
	// A repeated list is read into the one before it, element by element,
	// as encoding/json does (found by FuzzDecodeImages).
	`[{"vAriAnts":[{"nAme":"0"}],"vAriAnts":[{}]}]`,
	`[{"variants":[{"name":"a","width":1},{"name":"b"}],"variants":[{"url":"u"}]}]`,
	`[{"variants":[{"name":"a"}],"variants":[{"url":"u"},{"width":2}]}]`,
	// As productColumns selects them: each image a list of its values
	// (json_build_array puts ", " between them).
	`[["0190f5a4-1b2c-7d3e-8f40-5a6b7c8d9e0f", 0, "https://images.example/a.jpg", "pending", 0, null, "2026-12-02T14:50:56.123456+00:00", null, null]]`,
	`[["0190f5a4-1b2c-7d3e-8f40-5a6b7c8d9e0f", 0, "https://images.example/a.jpg", "ready", 1, null, "2026-12-02T15:50:56.1+01:00", [{"name":"main","url":"https://cdn.example/a.jpg","width":1600,"height":1200,"bytes":183211,"format":"jpeg"}], null], ` +
		"\n " + `["0190f5a4-1b2c-7d3e-8f40-5a6b7c8d9e10", 1, "https://images.example/\u00e9t\u00e9 \"1\".jpg", "failed", 3, "source_not_found", "2026-12-02T14:50:56Z", null, {"width":4032,"height":3024,"format":"jpeg","bytes":3456789,"thumbhash":"1QcSHQRnh493V4dIh4eXh1h4kJUI","color":"#5a7d3c"}]]`,
	`[[null, null, null, null, null, null, null, [], {}], null, {"position":3}]`,
}

// TestDecodeImagesMatchesEncodingJSON: the images decoder reads what
// encoding/json read into []imageRow, from PostgreSQL's JSON and from
// snapshots.
func TestDecodeImagesMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 2, 14, 50, 56, 123456000, time.UTC)
	snapshot := string(postgres.SnapshotImages([]product.Image{
		{ID: uuid.New(), Position: 0, SourceURL: "https://images.example/<a>&b.jpg", Status: product.ImageReady, Attempts: 1, UpdatedAt: at,
			Variants: []product.Variant{{Name: "main", URL: "https://cdn.example/a.jpg", Width: 1600, Height: 1200, Bytes: 183211, Format: "jpeg"}},
			Source:   &product.SourceFacts{Width: 4032, Height: 3024, Format: "jpeg", Bytes: 3_456_789, ThumbHash: "x", Color: "#000000"}},
		{ID: uuid.New(), Position: 1, SourceURL: "https://images.example/b.jpg", Status: product.ImageFailed, Attempts: 3, ErrorCode: "too_large", UpdatedAt: at},
		{ID: uuid.New(), Position: 2, SourceURL: "https://images.example/c.jpg", Status: product.ImagePending, Variants: []product.Variant{}},
	}))
	for i, column := range append(imagesColumns, snapshot) {
		want, err := postgres.DecodeImagesReflect([]byte(column))
		if err != nil {
			t.Fatalf("column %d: encoding/json: %v", i, err)
		}
		got, err := postgres.DecodeImages(column)
		if err != nil {
			t.Errorf("DecodeImages(%s): %v", column, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("DecodeImages(%s) (-encoding/json +got):\n%s", column, diff)
		}
	}
}

// TestDecodeImagesRefusesWhatEncodingJSONRefuses: malformed JSON and
// values of the wrong type are errors.
func TestDecodeImagesRefusesWhatEncodingJSONRefuses(t *testing.T) {
	for _, column := range []string{
		``, `[`, `[{]`, `[{"id":}]`, `[{"id":"not-a-uuid"}]`, `[{"position":"1"}]`, `[{"position":1.5}]`,
		`[{"status":1}]`, `[{"variants":{}}]`, `[{"source":[]}]`, `[{"updated_at":"yesterday"}]`, `[{"a":1}] x`,
		`[{"source_url":"a` + "\x01" + `b"}]`, `[{"variants":[{"bytes":99999999999999999999999}]}]`, `{}`, `[{"a":tru}]`, `[1]`, "[]\x00x",
		`[[]]`, `[["0190f5a4-1b2c-7d3e-8f40-5a6b7c8d9e0f", 0]]`, `[[null, null, null, null, null, null, null, null, null, null]]`,
		`[[null, "0", null, null, null, null, null, null, null]]`, `[[null, null, null, null, null, null, null, {}, null]]`,
	} {
		if _, refErr := postgres.DecodeImagesReflect([]byte(column)); refErr == nil {
			t.Fatalf("encoding/json accepts %q: not a case for this test", column)
		}
		if got, err := postgres.DecodeImages(column); err == nil {
			t.Errorf("DecodeImages(%q) = %+v, want an error", column, got)
		}
	}
}

// FuzzDecodeImages: whatever encoding/json reads into []imageRow, the
// decoder reads the same; it never panics.
func FuzzDecodeImages(f *testing.F) {
	for _, c := range imagesColumns {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, column string) {
		got, err := postgres.DecodeImages(column)
		want, refErr := postgres.DecodeImagesReflect([]byte(column))
		if refErr != nil {
			return
		}
		if err != nil {
			t.Fatalf("DecodeImages(%q): %v; encoding/json read it", column, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("DecodeImages(%q) (-encoding/json +got):\n%s", column, diff)
		}
	})
}

// BenchmarkDecodeImages decodes the images column of one product with one
// image, as PostgreSQL sends it (the image as a list of its values): with make load's one variant, and with the
// default ladder's ten variants and the source's facts.
func BenchmarkDecodeImages(b *testing.B) {
	image := func(variants, source string) string {
		return `[["0190f5a4-1b2c-7d3e-8f40-5a6b7c8d9e0f", 0, "https://images.example/0190f5a4-1b2c-7d3e-8f40-5a6b7c8d9e0f.jpg", ` +
			`"ready", 1, null, "2026-12-02T14:50:56.123456+00:00", ` + variants + `, ` + source + `]]`
	}
	variant := func(name string, width int, format string) string {
		return fmt.Sprintf(`{"name":%q,"url":"https://cdn.example/products/0190f5a4-1b2c-7d3e-8f40-5a6b7c8d9e0f/%s-1f2e3d4c5b6a.%s","width":%d,"height":%d,"bytes":%d,"format":%q}`,
			name, name, format, width, width*3/4, width*90, format)
	}
	ladder := []string{variant("main", 1600, "webp"), variant("thumbnail", 320, "webp")}
	for _, f := range []string{"jpeg", "webp"} {
		for _, w := range []int{320, 640, 1024, 1600} {
			ladder = append(ladder, variant(fmt.Sprintf("%s-%d", f, w), w, f))
		}
	}
	for _, tt := range []struct{ name, column string }{
		{"shape=one-variant", image("["+variant("main", 1600, "jpeg")+"]", "null")},
		{"shape=ladder", image("["+strings.Join(ladder, ",")+"]",
			`{"width":4032,"height":3024,"format":"jpeg","bytes":3456789,"thumbhash":"1QcSHQRnh493V4dIh4eXh1h4kJUI","color":"#5a7d3c"}`)},
	} {
		b.Run(tt.name+"/decoder=reader", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tt.column)))
			for b.Loop() {
				if _, err := postgres.DecodeImages(tt.column); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tt.name+"/decoder=encoding-json", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tt.column)))
			for b.Loop() {
				if _, err := postgres.DecodeImagesReflect([]byte(tt.column)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
