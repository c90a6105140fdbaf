package postgres

import (
	"encoding/json"

	"github.com/pms-dev/pms/product"
)

// DecodeImages decodes an images column (or a snapshot's images) as
// product reads do.
func DecodeImages(s string) ([]product.Image, error) {
	var d imageDecoder
	return d.decode(s)
}

// DecodeImagesReflect decodes images as product reads did before issue 9,
// through encoding/json into []imageRow: the reference DecodeImages must
// match.
func DecodeImagesReflect(raw []byte) ([]product.Image, error) {
	var rows []imageRow
	if err := json.Unmarshal(raw, &rows); err != nil {
		return nil, err
	}
	images := make([]product.Image, len(rows))
	for i, im := range rows {
		var code string
		if im.ErrorCode != nil {
			code = *im.ErrorCode
		}
		images[i] = product.Image{
			ID: im.ID, Position: im.Position, SourceURL: im.SourceURL, Status: product.ImageStatus(im.Status),
			Attempts: im.Attempts, ErrorCode: code, Variants: im.Variants, Source: im.Source, UpdatedAt: im.UpdatedAt.UTC(),
		}
	}
	return images, nil
}

// SnapshotImages returns images as an idempotency snapshot keeps them.
func SnapshotImages(images []product.Image) []byte {
	return snapshotOf(product.Product{Images: images}).Images
}

// ListQuery returns a list's statement and arguments as List sends them,
// and BuildListQuery as they are built afresh, without the statements kept
// by shape.
var ListQuery = listQuery

func BuildListQuery(f product.Filter) (string, []any) { return buildListQuery(f, true) }
