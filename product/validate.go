package product

import (
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Draft is the writable part of a product, as a client submits it.
type Draft struct {
	UserID      uuid.UUID
	Name        string
	Description string
	Price       Price
	ImageURLs   []string
}

// Validate returns a *ValidationError naming every field that breaks a rule,
// or nil.
func (d Draft) Validate() error {
	var ps Problems
	if d.UserID == uuid.Nil {
		ps.Add("user_id", "is required")
	}
	checkName(&ps, d.Name)
	checkDescription(&ps, d.Description)
	checkPrice(&ps, d.Price)
	checkImageURLs(&ps, d.ImageURLs)
	return ps.Err()
}

func checkName(ps *Problems, name string) {
	switch n := utf8.RuneCountInString(name); {
	case strings.TrimSpace(name) == "":
		ps.Add("product_name", "is required")
	case n > MaxNameLen:
		ps.Add("product_name", "must be at most 255 characters")
	case !utf8.ValidString(name):
		ps.Add("product_name", "must be valid UTF-8")
	case strings.ContainsRune(name, 0):
		ps.Add("product_name", errNUL)
	}
}

// errNUL is the problem with text PostgreSQL cannot store.
const errNUL = "must not contain NUL characters"

func checkDescription(ps *Problems, d string) {
	switch {
	case utf8.RuneCountInString(d) > MaxDescriptionLen:
		ps.Add("product_description", "must be at most 10000 characters")
	case !utf8.ValidString(d):
		ps.Add("product_description", "must be valid UTF-8")
	case strings.ContainsRune(d, 0):
		ps.Add("product_description", errNUL)
	}
}

func checkPrice(ps *Problems, p Price) {
	switch {
	case p < 0:
		ps.Add("product_price", errPriceNegative.Error())
	case p > MaxPrice:
		ps.Add("product_price", errPriceTooLarge.Error())
	}
}

func checkImageURLs(ps *Problems, urls []string) {
	if len(urls) > MaxImages {
		ps.Add("product_images", "must have at most 20 images")
		return
	}
	seen := make(map[string]bool, len(urls))
	for i, u := range urls {
		field := "product_images[" + strconv.Itoa(i) + "]"
		if problem := urlProblem(u); problem != "" {
			ps.Add(field, problem)
		} else if seen[u] {
			ps.Add(field, "repeats an earlier image")
		}
		seen[u] = true
	}
}

// urlProblem says what is wrong with an image URL, or returns "".
func urlProblem(s string) string {
	if len(s) > MaxURLLen {
		return "must be at most 2048 characters"
	}
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || s == "":
		return "must be an absolute URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an http or https URL"
	case u.Host == "" || u.Hostname() == "":
		return "must name a host"
	case u.User != nil:
		return "must not contain credentials"
	}
	return ""
}

// Patch is a JSON merge patch of a product's writable fields: a nil field is
// left as it is.
type Patch struct {
	Name        *string
	Description *string
	Price       *Price
	ImageURLs   *[]string
}

// apply changes p as the patch says and reports whether anything changed.
// Images whose source URL stays keep their state; new URLs become new
// pending images.
func (pt Patch) apply(p *Product) (changed bool) {
	if pt.Name != nil && *pt.Name != p.Name {
		p.Name, changed = *pt.Name, true
	}
	if pt.Description != nil && *pt.Description != p.Description {
		p.Description, changed = *pt.Description, true
	}
	if pt.Price != nil && *pt.Price != p.Price {
		p.Price, changed = *pt.Price, true
	}
	if pt.ImageURLs != nil {
		old := make(map[string]Image, len(p.Images))
		for _, im := range p.Images {
			old[im.SourceURL] = im
		}
		images := make([]Image, len(*pt.ImageURLs))
		for i, u := range *pt.ImageURLs {
			im, ok := old[u]
			if !ok {
				im = newImage(u)
			}
			if !ok || im.Position != i {
				changed = true
			}
			im.Position = i
			images[i] = im
		}
		if len(images) != len(p.Images) {
			changed = true
		}
		p.Images = images
	}
	return changed
}

func newImage(sourceURL string) Image {
	return Image{ID: mustV7(), SourceURL: sourceURL, Status: ImagePending}
}

// mustV7 returns a new time-ordered UUID. uuid.NewV7 fails only when the
// system's random source does, which leaves nothing sensible to do.
func mustV7() uuid.UUID {
	return uuid.Must(uuid.NewV7())
}
