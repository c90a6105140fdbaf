package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

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
	q := query{}
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
	if f.Name != "" {
		q.where("p.product_name ILIKE " + q.arg("%"+escapeLike(f.Name)+"%"))
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
	sqlText := productColumns + " WHERE " + strings.Join(q.conds, " AND ") +
		fmt.Sprintf(" ORDER BY %s %s, p.id %s LIMIT %s", col, dir, dir, q.arg(f.Limit+1))

	var rows []productRow
	if err := s.db.db.SelectContext(ctx, &rows, sqlText, q.args...); err != nil {
		return nil, translate(fmt.Errorf("list products: %w", err))
	}
	out := make([]product.Product, len(rows))
	for i, r := range rows {
		p, err := r.toProduct()
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
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
