-- +goose Up
-- A catalogue-wide name search first filters a sort index in order (see
-- searchQuery in platform/postgres/list.go): the sort indexes carry
-- product_name so that step is an index-only scan.
DROP INDEX products_created_idx;
CREATE INDEX products_created_idx ON products (created_at, id) INCLUDE (product_name) WHERE deleted_at IS NULL;
DROP INDEX products_price_idx;
CREATE INDEX products_price_idx ON products (product_price, id) INCLUDE (product_name) WHERE deleted_at IS NULL;

-- The default sample misjudges how many names contain a word by up to 100x,
-- which sends name searches with a user or price filter down a sort index
-- (130-930 ms at 1M rows, see BENCHMARKS.md); a larger sample fixes the
-- estimates for about 1 ms more planning.
ALTER TABLE products ALTER COLUMN product_name SET STATISTICS 1000;

-- +goose Down
ALTER TABLE products ALTER COLUMN product_name SET STATISTICS -1;
DROP INDEX products_price_idx;
CREATE INDEX products_price_idx ON products (product_price, id) WHERE deleted_at IS NULL;
DROP INDEX products_created_idx;
CREATE INDEX products_created_idx ON products (created_at, id) WHERE deleted_at IS NULL;
