package postgres_test

import (
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/product"
)

// TestListQueryKeptByShape: a list's statement text, kept by the filters'
// shape after the first list of that shape, is the one built afresh for
// every list of the shape, whatever its values, and so are its arguments.
func TestListQueryKeptByShape(t *testing.T) {
	user, min, max := uuid.New(), product.Price(1000), product.Price(5000)
	after := &product.Cursor{CreatedAt: time.Date(2026, 12, 2, 14, 50, 56, 123456000, time.UTC), Price: 2550, Name: "Lamp", ID: uuid.New()}
	sorts := []product.Sort{product.SortCreated, product.SortCreatedDesc, product.SortPrice, product.SortPriceDesc, product.SortName}
	for shape := range 1 << 5 {
		for _, sort := range sorts {
			for round := range 3 { // the first builds the text, the others find it
				f := product.Filter{Sort: sort, Limit: 20 + round}
				if shape&1 != 0 {
					f.UserID = &user
				}
				if shape&2 != 0 {
					f.MinPrice = &min
				}
				if shape&4 != 0 {
					f.MaxPrice = &max
				}
				if shape&8 != 0 {
					c := *after
					c.Name += string(rune('a' + round))
					f.After = &c
				}
				if shape&16 != 0 {
					f.Name = "lamp" + string(rune('a'+round))
				}
				text, args := postgres.ListQuery(f)
				wantText, wantArgs := postgres.BuildListQuery(f)
				if text != wantText {
					t.Errorf("ListQuery(%+v) text:\n%s\nwant:\n%s", f, text, wantText)
				}
				if diff := gocmp.Diff(wantArgs, args); diff != "" {
					t.Errorf("ListQuery(%+v) arguments (-want +got):\n%s", f, diff)
				}
			}
		}
	}
}
