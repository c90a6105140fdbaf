package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/pms-dev/pms/product"
)

// query builds a WHERE clause whose conditions and arguments are appended
// together, so placeholders and arguments cannot drift apart.
type query struct {
	conds []string
	args  []any
}

// arg adds an argument and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

func (q *query) where(cond string) { q.conds = append(q.conds, cond) }

// sortColumns maps a sort key to the column expression its index is on.
var sortColumns = map[string]string{
	"created_at": "p.created_at",
	"price":      "p.product_price",
	"name":       `p.product_name COLLATE "C"`,
}

// List returns up to f.Limit+1 products matching f; see product.Store.
func (s *ProductStore) List(ctx context.Context, f product.Filter) ([]product.Product, error) {
	sqlText, args := listQuery(f)
	rows, err := s.db.db.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return nil, translate(fmt.Errorf("list products: %w", err))
	}
	defer rows.Close()
	out, err := readProducts(rows, f.Limit+1)
	if err != nil {
		return nil, translate(fmt.Errorf("list products: %w", err))
	}
	return out, nil
}

// listShape is what the text of a list's statement depends on: which
// filters are set, and the order. Values go in as arguments, never into the
// text.
type listShape struct {
	user, minPrice, maxPrice, after, name bool
	sort                                  product.Sort
}

// listStatements holds the statement text of each listShape seen so far (at
// most 2⁵ × 5), so that a list builds only its arguments: the text is most
// of a kilobyte.
var listStatements sync.Map // listShape → string

// listQuery returns the statement that selects f's page, and its arguments.
func listQuery(f product.Filter) (string, []any) {
	shape := listShape{f.UserID != nil, f.MinPrice != nil, f.MaxPrice != nil, f.After != nil, f.Name != "", f.Sort}
	if text, ok := listStatements.Load(shape); ok {
		_, args := buildListQuery(f, false)
		return text.(string), args
	}
	text, args := buildListQuery(f, true)
	listStatements.Store(shape, text)
	return text, args
}

// buildListQuery returns f's arguments, and with withText the statement
// text for them.
func buildListQuery(f product.Filter, withText bool) (string, []any) {
	q := query{args: make([]any, 0, 8)}
	q.where("p.deleted_at IS NULL")
	if f.UserID != nil {
		q.where("p.user_id = " + q.arg(*f.UserID))
	}
	if f.MinPrice != nil {
		q.where("p.product_price >= " + q.arg(f.MinPrice.String()) + "::numeric")
	}
	if f.MaxPrice != nil {
		q.where("p.product_price <= " + q.arg(f.MaxPrice.String()) + "::numeric")
	}
	col, dir, cmp := sortColumns[f.Sort.Key()], "ASC", ">"
	if f.Sort.Desc() {
		dir, cmp = "DESC", "<"
	}
	if c := f.After; c != nil {
		var key any
		switch f.Sort.Key() {
		case "created_at":
			key = c.CreatedAt
		case "price":
			key = c.Price.String()
		case "name":
			key = c.Name
		}
		q.where(fmt.Sprintf("(%s, p.id) %s (%s, %s)", col, cmp, cast(f.Sort.Key(), q.arg(key)), q.arg(c.ID)))
	}
	limit := q.arg(f.Limit + 1)
	if f.Name != "" {
		pattern := q.arg("%" + escapeLike(f.Name) + "%")
		// Narrower searches keep the plain query: the indexes they would
		// walk don't carry the name, so the first step would cost more.
		if f.UserID == nil && f.MinPrice == nil && f.MaxPrice == nil {
			walk := q.arg(nameWalkRows)
			if !withText {
				return "", q.args
			}
			return searchQuery(&q, col, dir, pattern, limit, walk), q.args
		}
		q.where("p.product_name ILIKE " + pattern)
	}
	if !withText {
		return "", q.args
	}
	return productColumns + " WHERE " + strings.Join(q.conds, " AND ") +
		fmt.Sprintf(" ORDER BY %s %s, p.id %s LIMIT %s", col, dir, dir, limit), q.args
}

// nameWalkRows is how many rows of the list a name search filters in order
// before it turns to the trigram index.
const nameWalkRows = 10_000

// searchQuery selects a page of a name search over the whole catalogue in
// two steps, in one statement. The planner cannot tell how many names
// contain a substring (it took "toaster", in 2,396 names, for 95, and after
// some ANALYZE runs takes a word in 100 names for 10,000), and each of its
// plans is slow for some words: filtering the sort index in order reads most
// of it for a rare word, and fetching every match through the trigram index
// to sort them costs tens of milliseconds for a word in a few thousand names.
// So "walk" first filters the first nameWalkRows rows of the list in order,
// an index-only scan (the sort indexes carry product_name); when that fills
// the page, those are the first matches in order. Otherwise the word is rare
// among the first rows, and "page" collects all its matches through the
// trigram index and sorts them. OFFSET 0 hides the LIMIT from the planner
// there, so that a wrong estimate cannot make it walk the sort index instead.
func searchQuery(q *query, col, dir, pattern, limit, walk string) string {
	where := strings.Join(q.conds, " AND ")
	return fmt.Sprintf(`
WITH walk AS MATERIALIZED (
	SELECT w.id, w.k FROM (
		SELECT p.id, %[1]s AS k, p.product_name FROM products p
		WHERE %[2]s ORDER BY %[1]s %[3]s, p.id %[3]s LIMIT %[4]s) w
	WHERE w.product_name ILIKE %[5]s ORDER BY w.k %[3]s, w.id %[3]s LIMIT %[6]s
), page AS (
	SELECT id FROM walk WHERE (SELECT count(*) FROM walk) = %[6]s
	UNION ALL
	(SELECT m.id FROM (
		SELECT p.id, %[1]s AS k FROM products p
		WHERE (SELECT count(*) FROM walk) < %[6]s AND %[2]s AND p.product_name ILIKE %[5]s
		OFFSET 0) m
	 ORDER BY m.k %[3]s, m.id %[3]s LIMIT %[6]s)
)`, col, where, dir, walk, pattern, limit) + productColumns + fmt.Sprintf(`
JOIN page ON page.id = p.id
ORDER BY %[1]s %[2]s, p.id %[2]s`, col, dir)
}

// cast types a cursor placeholder like the column it is compared with.
func cast(key, placeholder string) string {
	switch key {
	case "price":
		return placeholder + "::numeric"
	case "name":
		return placeholder + `::text COLLATE "C"`
	}
	return placeholder + "::timestamptz"
}

// escapeLike makes s match literally inside a LIKE pattern.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
