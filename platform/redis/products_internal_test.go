package redis

import (
	"encoding/json"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/pms-dev/pms/product"
)

// TestCachedProductLayout pins the cached layout to productFormat. The
// layout is product.Product's own, so changing a field of Product, Image or
// Variant changes it; entries written before must then be misses, which
// only a new productFormat makes them.
func TestCachedProductLayout(t *testing.T) {
	const wantFormat = 3
	wantKeys := []string{
		"CreatedAt", "Description", "ID", "Images", "Images.Attempts", "Images.ErrorCode", "Images.ID",
		"Images.Position", "Images.Source", "Images.Source.Bytes", "Images.Source.Color", "Images.Source.Format",
		"Images.Source.Height", "Images.Source.ThumbHash", "Images.Source.Width", "Images.SourceURL", "Images.Status", "Images.UpdatedAt", "Images.Variants",
		"Images.Variants.Bytes", "Images.Variants.Format", "Images.Variants.Height", "Images.Variants.Name",
		"Images.Variants.URL", "Images.Variants.Width", "Name", "Price", "UpdatedAt", "UserID", "Version", "f",
	}
	// One of each nested value, so every key appears.
	p := product.Product{Images: []product.Image{{Variants: []product.Variant{{}}, Source: &product.SourceFacts{}}}}
	data, err := encodeProduct(p)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	got := keyPaths("", doc)
	if diff := cmp.Diff(wantKeys, got); productFormat != wantFormat || diff != "" {
		t.Errorf("cached layout at productFormat %d (-want at %d +got):\n%s\n"+
			"A field of product.Product, Image or Variant changed: bump productFormat, then update this test.",
			productFormat, wantFormat, diff)
	}
}

// keyPaths lists the object keys in v as dotted paths, sorted; an array
// contributes the keys of its elements.
func keyPaths(prefix string, v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			path := k
			if prefix != "" {
				path = prefix + "." + k
			}
			out = append(out, path)
			out = append(out, keyPaths(path, child)...)
		}
	case []any:
		for _, child := range v {
			out = append(out, keyPaths(prefix, child)...)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// TestCachedProductRoundTrip: a product with every field set decodes from
// the cache as it was encoded, and an entry of another format is refused.
func TestCachedProductRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 25, 22, 6, 44, 485573000, time.UTC)
	p := product.Product{
		ID: uuid.New(), UserID: uuid.New(), Name: "Desk lamp", Description: "Brass, 40 cm", Price: 4990,
		Version: 3, CreatedAt: at, UpdatedAt: at.Add(time.Second),
		Images: []product.Image{
			{ID: uuid.New(), Position: 0, SourceURL: "https://example.com/lamp.png", Status: product.ImageReady,
				Attempts: 1, UpdatedAt: at, Variants: []product.Variant{
					{Name: "main", URL: "https://cdn.example.com/a.webp", Width: 1600, Height: 1200, Bytes: 81234, Format: "webp"},
					{Name: "thumbnail", URL: "https://cdn.example.com/b.webp", Width: 320, Height: 240, Bytes: 9876, Format: "webp"},
				}},
			{ID: uuid.New(), Position: 1, SourceURL: "https://example.com/gone.jpg", Status: product.ImageFailed,
				Attempts: 3, ErrorCode: "source_not_found", UpdatedAt: at},
		},
	}
	data, err := encodeProduct(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeProduct(data)
	if err != nil {
		t.Fatalf("decodeProduct(encodeProduct(p)) error = %v", err)
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("decodeProduct(encodeProduct(p)) (-want +got):\n%s", diff)
	}
	if _, err := decodeProduct([]byte(`{"f":1,"id":"` + p.ID.String() + `"}`)); err == nil {
		t.Error("decodeProduct of a format 1 entry succeeded, want an error")
	}
}

// TestNearKeysOfAnnouncements: an announced Redis key finds the near entry
// it names, and no other cache's.
func TestNearKeysOfAnnouncements(t *testing.T) {
	id := uuid.New()
	if got, ok := productOf(productEntry(id).value); !ok || got != id {
		t.Errorf("productOf(%q) = %v, %v; want %v", productEntry(id).value, got, ok, id)
	}
	if got, ok := prefixOf(keyEntry("pms_ab12").value); !ok || got != "pms_ab12" {
		t.Errorf("prefixOf(%q) = %q, %v; want pms_ab12", keyEntry("pms_ab12").value, got, ok)
	}
	for _, k := range []string{keyEntry("pms_ab12").value, "pms:product:{nope}", "pms:product:{" + id.String(), productEntry(id).gen, ""} {
		if got, ok := productOf(k); ok {
			t.Errorf("productOf(%q) = %v, want none", k, got)
		}
	}
	for _, k := range []string{productEntry(id).value, keyEntry("x").gen, "pms:apikey:"} {
		if got, ok := prefixOf(k); ok {
			t.Errorf("prefixOf(%q) = %q, want none", k, got)
		}
	}
}
