package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"

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
// An image given as a list of values is read as the object with
// imageKeys for them.
func DecodeImagesReflect(raw []byte) ([]product.Image, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, err
	}
	rows := make([]imageRow, len(elems))
	for i, e := range elems {
		if t := bytes.TrimLeft(e, " \t\n\r"); len(t) > 0 && t[0] == '[' {
			var values []json.RawMessage
			if err := json.Unmarshal(e, &values); err != nil {
				return nil, err
			}
			if len(values) != len(imageKeys) {
				return nil, fmt.Errorf("an image of %d values", len(values))
			}
			object := map[string]json.RawMessage{}
			for j, v := range values {
				object[imageKeys[j]] = v
			}
			e, _ = json.Marshal(object)
		}
		if err := json.Unmarshal(e, &rows[i]); err != nil {
			return nil, err
		}
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

// RelayTurn is the key of the relays' advisory lock.
const RelayTurn = relayTurn
