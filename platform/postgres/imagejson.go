package postgres

import (
	"fmt"
	"strings"

	"github.com/pms-dev/pms/product"
)

// The images of a product arrive as one JSON list (productColumns), and
// idempotency snapshots keep them the same way ([]imageRow). imageDecoder
// reads that list member by member with a jsonReader instead of through
// encoding/json's reflection, which cost a list page of the default ladder
// more CPU than the rest of the page (BENCHMARKS.md, issue 9). It decodes
// what json.Unmarshal into []imageRow decoded: keys match as encoding/json
// matches them (exactly, else case-insensitively), unknown keys are
// skipped, null leaves a member at its zero value. Strings without escapes
// are slices of the one string the list is read into, so they cost no
// allocation.

// imageDecoder decodes images columns. It collects the images of the
// columns it is given (add) and hands them out in one slice (take), their
// variants in another, so that a page of products costs two allocations
// for its images rather than two a product; its buffers are reused.
type imageDecoder struct {
	images   []product.Image   // decoded since the last take
	variants []product.Variant // theirs, which their Variants point into until take
}

// noImages is the images of a product without any: empty, not nil, as
// json.Unmarshal made them.
var noImages = []product.Image{}

// noVariants is an empty list of variants, which json.Unmarshal made of
// [], and null left nil.
var noVariants = []product.Variant{}

// decode returns the images of the JSON list s, in its order.
func (d *imageDecoder) decode(s string) ([]product.Image, error) {
	defer d.reset()
	n, err := d.add(s)
	switch {
	case err != nil:
		return nil, err
	case n == 0:
		return noImages, nil
	}
	return d.take(), nil
}

// add decodes the JSON list s and returns how many images it holds; take
// returns them after those of the lists added before.
func (d *imageDecoder) add(s string) (int, error) {
	r := jsonReader{s: s}
	before := len(d.images)
	err := r.list(func() error {
		im, err := d.image(&r)
		d.images = append(d.images, im)
		return err
	})
	if err == nil {
		err = r.end()
	}
	if err != nil {
		d.reset()
		return 0, err
	}
	return len(d.images) - before, nil
}

// take returns the images added since the last take, in their order, in
// one new slice, their variants in another, and empties the decoder.
func (d *imageDecoder) take() []product.Image {
	images := append([]product.Image(nil), d.images...)
	total := 0
	for _, im := range images {
		total += len(im.Variants)
	}
	variants := make([]product.Variant, 0, total)
	for i, im := range images {
		if len(im.Variants) > 0 {
			start := len(variants)
			variants = append(variants, im.Variants...)
			images[i].Variants = variants[start:len(variants):len(variants)]
		}
	}
	d.reset()
	return images
}

// reset empties the decoder, dropping what its buffers refer to so that
// they hold on to no column.
func (d *imageDecoder) reset() {
	clear(d.images)
	clear(d.variants)
	d.images, d.variants = d.images[:0], d.variants[:0]
}

// image reads one image: an object with the keys of imageRow, or a list
// of their values in the order of imageKeys.
func (d *imageDecoder) image(r *jsonReader) (product.Image, error) {
	var im product.Image
	if r.space() != '[' {
		err := r.object(func(key string) error { return d.imageMember(r, &im, key) })
		return im, err
	}
	n := 0
	err := r.list(func() error {
		if n == len(imageKeys) {
			return r.fail(fmt.Sprintf("the end of an image's %d values", len(imageKeys)))
		}
		n++
		return d.imageMember(r, &im, imageKeys[n-1])
	})
	if err == nil && n != len(imageKeys) {
		err = fmt.Errorf("want an image's %d values, found %d", len(imageKeys), n)
	}
	return im, err
}

// imageMember reads the value of an image's member key into im. Keys match
// exactly here first, as nearly all do; field matches the others.
func (d *imageDecoder) imageMember(r *jsonReader, im *product.Image, key string) error {
	var err error
	switch key {
	case "id":
		im.ID, err = r.uuid()
	case "position":
		im.Position, err = r.int()
	case "source_url":
		im.SourceURL, err = r.str()
	case "status":
		var status string
		status, err = r.str()
		im.Status = product.ImageStatus(status)
	case "attempts":
		im.Attempts, err = r.int()
	case "error_code":
		im.ErrorCode, err = r.str()
	case "updated_at":
		im.UpdatedAt, err = r.time()
	case "variants":
		im.Variants, err = d.variantList(r, im.Variants)
	case "source":
		im.Source, err = r.source(im.Source)
	default:
		if k := field(key, imageKeys); k != "" {
			return d.imageMember(r, im, k)
		}
		err = r.skip()
	}
	return err
}

// variantList reads a list of variants: nil for null, empty (not nil) for
// an empty list. The list it returns is part of d.variants until take.
// prev is the list a key of the same name read before, if any: as
// encoding/json does, each variant is read into the one at its index in
// prev, so a member the later list leaves out keeps its earlier value.
func (d *imageDecoder) variantList(r *jsonReader, prev []product.Variant) ([]product.Variant, error) {
	if r.null() {
		return nil, nil
	}
	start := len(d.variants)
	err := r.list(func() error {
		var v product.Variant
		if i := len(d.variants) - start; i < len(prev) {
			v = prev[i]
		}
		err := r.variant(&v)
		d.variants = append(d.variants, v)
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case len(d.variants) == start:
		return noVariants, nil
	}
	return d.variants[start:len(d.variants):len(d.variants)], nil
}

// variant reads a variant object, product.Variant's fields (variantRow's
// keys in the column, the field names in snapshots), into v.
func (r *jsonReader) variant(v *product.Variant) error {
	return r.object(func(key string) error { return r.variantMember(v, key) })
}

// variantMember reads the value of a variant's member key into v.
func (r *jsonReader) variantMember(v *product.Variant, key string) error {
	var err error
	switch key {
	case "name":
		v.Name, err = r.str()
	case "url":
		v.URL, err = r.str()
	case "width":
		v.Width, err = r.int()
	case "height":
		v.Height, err = r.int()
	case "bytes":
		var n int
		n, err = r.int()
		v.Bytes = int64(n)
	case "format":
		v.Format, err = r.str()
	default:
		if k := field(key, variantKeys); k != "" {
			return r.variantMember(v, k)
		}
		err = r.skip()
	}
	return err
}

// source reads a source object (sourceRow's keys) into src, or into a new
// one when src is nil; null is nil.
func (r *jsonReader) source(src *product.SourceFacts) (*product.SourceFacts, error) {
	if r.null() {
		return nil, nil
	}
	if src == nil {
		src = new(product.SourceFacts)
	}
	err := r.object(func(key string) error { return r.sourceMember(src, key) })
	return src, err
}

// sourceMember reads the value of a source's member key into src.
func (r *jsonReader) sourceMember(src *product.SourceFacts, key string) error {
	var err error
	switch key {
	case "width":
		src.Width, err = r.int()
	case "height":
		src.Height, err = r.int()
	case "format":
		src.Format, err = r.str()
	case "bytes":
		var n int
		n, err = r.int()
		src.Bytes = int64(n)
	case "thumbhash":
		src.ThumbHash, err = r.str()
	case "color":
		src.Color, err = r.str()
	default:
		if k := field(key, sourceKeys); k != "" {
			return r.sourceMember(src, k)
		}
		err = r.skip()
	}
	return err
}

// The keys of the objects in an images column: imageRow's (in the order of
// the values of an image that productColumns selects as a list),
// variantRow's (product.Variant's fields) and sourceRow's.
var (
	imageKeys   = []string{"id", "position", "source_url", "status", "attempts", "error_code", "updated_at", "variants", "source"}
	variantKeys = []string{"name", "url", "width", "height", "bytes", "format"}
	sourceKeys  = []string{"width", "height", "format", "bytes", "thumbhash", "color"}
)

// field returns the one of keys that key names, as encoding/json matches a
// key to a field: exactly, else case-insensitively; "" for none.
func field(key string, keys []string) string {
	for _, k := range keys {
		if key == k {
			return k
		}
	}
	for _, k := range keys {
		if strings.EqualFold(key, k) {
			return k
		}
	}
	return ""
}
