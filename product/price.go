package product

import (
	"errors"
	"strconv"
	"strings"
)

// Price is an amount of money in hundredths (cents), as stored in a
// numeric(12,2) column.
type Price int64

// MaxPrice is the largest price a product may have (just under 10^10).
const MaxPrice Price = 10_000_000_000*100 - 1

// Errors returned by ParsePrice.
var (
	errPriceSyntax    = errors.New("must be a decimal number")
	errPriceDecimals  = errors.New("must have at most 2 decimal places")
	errPriceNegative  = errors.New("must be at least 0")
	errPriceTooLarge  = errors.New("must be less than 10000000000")
	errPriceExponents = errors.New("must be written without an exponent")
)

// ParsePrice parses a decimal such as "12", "12.5" or "12.50" exactly,
// without going through floating point. It refuses negative values, more
// than two decimal places and values of 10^10 or more.
func ParsePrice(s string) (Price, error) {
	if strings.ContainsAny(s, "eE") {
		return 0, errPriceExponents
	}
	if strings.HasPrefix(s, "-") {
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			return 0, errPriceNegative
		}
		return 0, errPriceSyntax
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || strings.Trim(whole, "0123456789") != "" || strings.Trim(frac, "0123456789") != "" {
		return 0, errPriceSyntax
	}
	if len(strings.TrimRight(frac, "0")) > 2 {
		return 0, errPriceDecimals
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > 10 {
		return 0, errPriceTooLarge
	}
	frac = (frac + "00")[:2]
	n, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil {
		return 0, errPriceSyntax
	}
	if p := Price(n); p <= MaxPrice {
		return p, nil
	}
	return 0, errPriceTooLarge
}

// String formats the price with exactly two decimals, e.g. "12.50".
func (p Price) String() string { return string(p.Append(nil)) }

// Append appends the price to b as String formats it.
func (p Price) Append(b []byte) []byte {
	if p < 0 {
		b, p = append(b, '-'), -p
	}
	b = strconv.AppendInt(b, int64(p/100), 10)
	cents := byte(p % 100)
	return append(b, '.', '0'+cents/10, '0'+cents%10)
}
