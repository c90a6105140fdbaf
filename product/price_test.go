package product_test

import (
	"testing"

	"github.com/pms-dev/pms/product"
)

func TestParsePrice(t *testing.T) {
	tests := []struct {
		in      string
		want    product.Price
		wantErr string
	}{
		{"0", 0, ""},
		{"12", 1200, ""},
		{"12.5", 1250, ""},
		{"12.50", 1250, ""},
		{"1.230", 123, ""},
		{"0.01", 1, ""},
		{"007.10", 710, ""},
		{"9999999999.99", product.MaxPrice, ""},
		{"10000000000", 0, "must be less than 10000000000"},
		{"99999999999999999999", 0, "must be less than 10000000000"},
		{"1.234", 0, "must have at most 2 decimal places"},
		{"-1", 0, "must be at least 0"},
		{"-0.5", 0, "must be at least 0"},
		{"1e3", 0, "must be written without an exponent"},
		{"", 0, "must be a decimal number"},
		{".5", 0, "must be a decimal number"},
		{"1.", 1 * 100, ""},
		{"12a", 0, "must be a decimal number"},
		{"--1", 0, "must be a decimal number"},
		{" 1", 0, "must be a decimal number"},
	}
	for _, tt := range tests {
		got, err := product.ParsePrice(tt.in)
		if errText(err) != tt.wantErr || (err == nil && got != tt.want) {
			t.Errorf("ParsePrice(%q) = %d, %q; want %d, %q", tt.in, got, errText(err), tt.want, tt.wantErr)
		}
	}
}

func TestPriceString(t *testing.T) {
	for p, want := range map[product.Price]string{0: "0.00", 5: "0.05", 1250: "12.50", product.MaxPrice: "9999999999.99", -150: "-1.50"} {
		if got := p.String(); got != want {
			t.Errorf("Price(%d).String() = %q, want %q", int64(p), got, want)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
