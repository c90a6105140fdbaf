package postgres_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
)

// searchRow is a product the name-search test stores, as the test sees it.
type searchRow struct {
	id      uuid.UUID
	name    string
	price   product.Price
	created time.Time
	deleted bool
}

// TestListNameSearch pages through name searches over more products than a
// search filters in order (10,000) and checks every page against the same
// search done in Go. The ordered walk answers for a word in every tenth name,
// the trigram fallback for a word in ten names and for every last page.
func TestListNameSearch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := postgrestest.New(t)
	store := newProductStore(t, db, postgres.DefaultIdempotencyConfig())
	svc := product.NewService(store, imageTasks, product.Policy{})
	owner := account.User{ID: uuid.New(), Email: "search-" + uuid.NewString() + "@example.com", Name: "Search Owner",
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := postgres.NewAccountStore(db).CreateUser(ctx, owner); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	admin := account.Caller{UserID: owner.ID, Admin: true} // searches the whole catalogue
	common, rare := "xc"+randomHex(t), "xr"+randomHex(t)   // unique to this run
	rows := storeSearchRows(t, postgrestest.URL(t), owner.ID, common, strings.ToUpper(rare))

	sorts := []product.Sort{product.SortCreated, product.SortCreatedDesc, product.SortPrice, product.SortPriceDesc, product.SortName}
	for _, word := range []string{common, rare} {
		for _, sort := range sorts {
			t.Run(word[:2]+","+string(sort), func(t *testing.T) {
				want := expectSearch(rows, word, sort)
				var got []uuid.UUID
				f := product.Filter{Name: word, Sort: sort, Limit: 97}
				if word == rare {
					f.Limit = 3
				}
				for pages := 0; ; pages++ {
					page, err := svc.List(ctx, admin, f)
					if err != nil {
						t.Fatalf("List(%+v) page %d: %v", f, pages, err)
					}
					for _, p := range page.Items {
						got = append(got, p.ID)
					}
					if page.Next == nil || pages > 100 {
						break
					}
					f.After = page.Next
				}
				if diff := gocmp.Diff(want, got); diff != "" {
					t.Errorf("name=%s sort=%s: ids differ from the search done in Go (-want +got):\n%s", word, sort, diff)
				}
			})
		}
	}
}

// storeSearchRows copies 12,000 products of owner into the test database:
// every tenth name holds common, one name in 1,200 holds rare, and one
// matching product in twenty is deleted. Prices, names and creation times
// repeat so that ties are broken by id.
func storeSearchRows(t *testing.T, dbURL string, owner uuid.UUID, common, rare string) []searchRow {
	t.Helper()
	r := mrand.New(mrand.NewPCG(5, 5))
	base := time.Now().UTC().Truncate(time.Microsecond)
	rows := make([]searchRow, 12_000)
	for i := range rows {
		row := searchRow{
			id:      uuid.New(),
			name:    fmt.Sprintf("Item %03d", r.IntN(500)),
			price:   product.Price(r.IntN(300) * 50),
			created: base.Add(-time.Duration(r.IntN(5000)) * time.Second),
		}
		switch {
		case i%1200 == 7:
			row.name = fmt.Sprintf("Gadget %s %d", rare, r.IntN(3))
		case i%10 == 3:
			row.name = fmt.Sprintf("Widget %d %s", r.IntN(20), common)
		}
		row.deleted = i%200 == 3 || i%2400 == 7
		rows[i] = row
	}

	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer db.Close()
	err = copyRows(context.Background(), db, `COPY products (id, user_id, product_name, product_price, created_at,
		updated_at, deleted_at) FROM STDIN`, func(put func(...any) error) error {
		for _, row := range rows {
			var deleted any
			if row.deleted {
				deleted = row.created
			}
			if err := put(row.id.String(), owner.String(), row.name, row.price.String(), row.created, row.created, deleted); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copy products: %v", err)
	}
	// The planner must see the rows, as it would in production.
	if _, err := db.Exec(`ANALYZE products`); err != nil {
		t.Fatalf("analyze: %v", err)
	}
	return rows
}

// expectSearch returns the ids of live rows whose name contains word, in
// the list's order.
func expectSearch(rows []searchRow, word string, sort product.Sort) []uuid.UUID {
	var match []searchRow
	for _, row := range rows {
		if !row.deleted && strings.Contains(strings.ToLower(row.name), strings.ToLower(word)) {
			match = append(match, row)
		}
	}
	slices.SortFunc(match, func(a, b searchRow) int {
		var c int
		switch sort.Key() {
		case "created_at":
			c = a.created.Compare(b.created)
		case "price":
			c = cmp.Compare(a.price, b.price)
		case "name":
			c = strings.Compare(a.name, b.name) // COLLATE "C" compares bytes
		}
		if c == 0 {
			c = strings.Compare(a.id.String(), b.id.String()) // as PostgreSQL orders uuid
		}
		if sort.Desc() {
			c = -c
		}
		return c
	})
	ids := make([]uuid.UUID, len(match))
	for i, row := range match {
		ids[i] = row.id
	}
	return ids
}

func randomHex(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b[:])
}
