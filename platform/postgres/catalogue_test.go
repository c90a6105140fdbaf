package postgres_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product"
)

// catalogue generates the benchmark's users, products and images, the same
// ones on every run: names are drawn from word lists with Zipf-like weights,
// so name search meets both very common and rare words.
type catalogue struct {
	r     *rand.Rand
	n, i  int
	users []uuid.UUID
	start time.Time
	step  time.Duration // between consecutive products' created_at
}

// Word lists, most frequent first. A product is named
// "Brand Adjective [Material] Noun [Collection Edition]".
var (
	adjectives = strings.Fields(`Classic Modern Compact Portable Premium Wireless Vintage Ergonomic Rustic
		Sleek Durable Lightweight Handmade Foldable Adjustable Waterproof Organic Deluxe Minimalist Rechargeable
		Insulated Reusable Stackable Cordless Magnetic Elegant Industrial Cozy Retro Smart Silent Heavy-Duty
		Luxury Essential Everyday Refurbished Solar Tactical Nordic Artisan`)
	materials = strings.Fields(`Steel Wooden Cotton Leather Bamboo Glass Ceramic Aluminum Wool Linen Plastic
		Rubber Marble Copper Brass Silk Denim Oak Walnut Titanium Carbon Velvet Canvas Granite Porcelain Cork
		Felt Suede Acrylic Concrete`)
	nouns = strings.Fields(`Chair Table Lamp Backpack Mug Keyboard Headphones Blender Kettle Sofa Desk Shelf
		Bottle Jacket Sneakers Watch Wallet Notebook Pen Speaker Mouse Monitor Charger Cable Tent Bicycle Helmet
		Gloves Scarf Hat Pillow Blanket Rug Vase Clock Mirror Frame Candle Basket Bowl Plate Knife Pan Pot Grill
		Drill Hammer Saw Ladder Umbrella Sunglasses Belt Boots Sandals Dress Shirt Sweater Hoodie Shorts Jeans
		Toy Puzzle Camera Tripod Drone Router Tablet Stool Bench Cabinet Dresser Mattress Towel Soap Brush Comb
		Razor Toaster Microwave Fan Heater Humidifier Purifier Vacuum Mop Bucket Planter Hose Shovel Rake
		Wheelbarrow Cooler Thermos Lunchbox Skateboard Surfboard Kayak Paddle Guitar Ukulele Drum Microphone
		Easel`)
	collections = strings.Fields(`Aurora Nimbus Zephyr Quasar Solstice Equinox Meridian Horizon Tundra Monsoon
		Sierra Cascade Glacier Ember Harbor Summit Canyon Prairie Lagoon Savanna Fjord Mirage Oasis Comet Nebula
		Pulsar Eclipse Zenith Vortex Tempest Cyclone Blizzard Drizzle Twilight Daybreak Midnight Starlight
		Moonrise Sunset Riverbend Woodland Highland Lowland Seaside Lakeside Hillcrest Stonegate Ironwood
		Silverline Goldcrest Bluebell Wildflower Thistle Juniper Sequoia Magnolia Wisteria Hawthorn Foxglove
		Marigold Saffron Cardamom Tamarind Cinnabar Obsidian Quartzite Basalt Feldspar Gossamer Filigree
		Brocade Damask Chambray Seersucker Houndstooth Paisley Argyle Tartan Gingham Jacquard`)
	brands = makeBrands()
)

// Share of names with a material and with a collection.
const (
	materialShare   = 0.6
	collectionShare = 0.06
)

// makeBrands returns 312 made-up brand names in a fixed shuffled order, so a
// brand's popularity has nothing to do with its place in the alphabet.
func makeBrands() []string {
	var out []string
	for _, p := range strings.Fields("Ac Bel Cor Dex El Fen Gal Hal Ix Jor Kel Lum Mar Nor Ov Pax Quin Ros Sol Tav Ul Ven Wex Xan Yor Zel") {
		for _, s := range strings.Fields("a ex ion o ora us ix en ar is um ova") {
			out = append(out, p+s)
		}
	}
	rand.New(rand.NewPCG(3, 3)).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// zipf picks the k-th word (from 1) with weight 1/k^s.
type zipf struct {
	words []string
	cdf   []float64
}

func newZipf(words []string, s float64) zipf {
	z := zipf{words: words, cdf: make([]float64, len(words))}
	sum := 0.0
	for k := range words {
		sum += 1 / math.Pow(float64(k+1), s)
		z.cdf[k] = sum
	}
	for k := range z.cdf {
		z.cdf[k] /= sum
	}
	return z
}

func (z zipf) pick(r *rand.Rand) string {
	u := r.Float64()
	lo, hi := 0, len(z.cdf)-1
	for lo < hi {
		if mid := (lo + hi) / 2; z.cdf[mid] < u {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return z.words[lo]
}

var (
	brandWords      = newZipf(brands, 1)
	adjectiveWords  = newZipf(adjectives, 1)
	materialWords   = newZipf(materials, 1)
	nounWords       = newZipf(nouns, 1)
	collectionWords = newZipf(collections, 1.3)
)

// Search terms for the benchmark: the three most frequent adjectives,
// materials and nouns (each in 5–25 % of names), nouns ranked 41–60 (about
// 0.4 % each) and the 40 least frequent collections (about 0.01 % each).
var (
	commonWords = lowerAll(adjectives[:3], materials[:3], nouns[:3])
	mediumWords = lowerAll(nouns[40:60])
	rareWords   = lowerAll(collections[40:])
)

func lowerAll(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, w := range l {
			out = append(out, strings.ToLower(w))
		}
	}
	return out
}

const seedUsers = 1000

func newCatalogue(n int) *catalogue {
	c := &catalogue{
		r:     rand.New(rand.NewPCG(1, 2)),
		n:     n,
		start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	c.step = 365 * 24 * time.Hour / time.Duration(n)
	for i := range seedUsers {
		c.users = append(c.users, uuidV7(c.start.Add(-time.Duration(seedUsers-i)*time.Hour), c.r))
	}
	return c
}

// userRow returns the COPY values of user i.
func (c *catalogue) userRow(i int) []any {
	created := c.start.Add(-time.Duration(seedUsers-i) * time.Hour)
	return []any{c.users[i].String(), fmt.Sprintf("seller%04d@example.com", i), fmt.Sprintf("Seller %d", i), i == 0, created}
}

// user picks an owner: the first users sell far more than the last (user 0
// owns about 3 % of the products, most users a few hundred).
func (c *catalogue) user() uuid.UUID {
	u := c.r.Float64()
	return c.users[int(u*u*float64(len(c.users)))]
}

// next returns the COPY values of the next product, oldest first, with the
// id and created_at its images need.
func (c *catalogue) next() (row []any, id uuid.UUID, created time.Time) {
	r := c.r
	created = c.start.Add(time.Duration(c.i)*c.step + time.Duration(r.Int64N(int64(c.step)))).Truncate(time.Microsecond)
	c.i++
	id = uuidV7(created, r)
	brand, adj, noun := brandWords.pick(r), adjectiveWords.pick(r), nounWords.pick(r)
	name := brand + " " + adj + " "
	material := ""
	if r.Float64() < materialShare {
		material = materialWords.pick(r)
		name += material + " "
	}
	name += noun
	if r.Float64() < collectionShare {
		name += " " + collectionWords.pick(r) + " Edition"
	}
	desc := fmt.Sprintf("%s %s by %s.", adj, strings.ToLower(noun), brand)
	if material != "" {
		desc += " Made of " + strings.ToLower(material) + "."
	}
	desc += fmt.Sprintf(" Ships in %d days.", 1+r.IntN(14))

	updated, version := created, 1
	if r.Float64() < 0.15 {
		updated = created.Add(time.Duration(r.Int64N(int64(30 * 24 * time.Hour)))).Truncate(time.Microsecond)
		version += 1 + r.IntN(3)
	}
	var deleted any
	if r.Float64() < 0.01 {
		deleted = updated.Add(time.Hour)
		version++
	}
	row = []any{id.String(), c.user().String(), name, desc, c.price(), version, created, updated, deleted}
	return row, id, created
}

// price is log-uniform between 0.50 and 10,000, with 1 % free items.
func (c *catalogue) price() string {
	if c.r.Float64() < 0.01 {
		return "0.00"
	}
	cents := math.Exp(math.Log(50) + c.r.Float64()*math.Log(20_000))
	return product.Price(int64(cents)).String()
}

// images returns the COPY values of one to three images of a product: most
// are ready with a main and a thumbnail variant, the rest pending,
// processing or failed.
func (c *catalogue) images(productID uuid.UUID, created time.Time) [][]any {
	r := c.r
	n := 1 + r.IntN(3)
	images := make([][]any, n)
	for pos := range n {
		id := uuidV7(created.Add(time.Duration(pos+1)*time.Microsecond), r)
		src := fmt.Sprintf("https://images.example.com/%s/%d.jpg", productID, pos)
		var status string
		var attempts int
		var errorCode any
		variants := "[]"
		switch u := r.Float64(); {
		case u < 0.70:
			status, attempts = "ready", 1
			height := 900 + r.IntN(700)
			variants = fmt.Sprintf(`[{"name":"main","url":%q,"width":1600,"height":%d,"bytes":%d,"format":"webp"},`+
				`{"name":"thumbnail","url":%q,"width":320,"height":%d,"bytes":%d,"format":"webp"}]`,
				c.variantURL(productID), height, 80_000+r.IntN(320_000), c.variantURL(productID), height/5, 4_000+r.IntN(16_000))
		case u < 0.85:
			status = "pending"
		case u < 0.90:
			status, attempts = "processing", 1
		default:
			status, attempts, errorCode = "failed", 3, "not_an_image"
		}
		images[pos] = []any{id.String(), productID.String(), pos, src, status, attempts, errorCode, variants, created}
	}
	return images
}

func (c *catalogue) variantURL(productID uuid.UUID) string {
	return fmt.Sprintf("https://cdn.example.com/products/%s/%016x.webp", productID, c.r.Uint64())
}

// uuidV7 returns a version 7 UUID for t whose 12 "rand_a" bits hold the
// sub-millisecond part of t (RFC 9562 method 3), so ids sort like created_at.
func uuidV7(t time.Time, r *rand.Rand) uuid.UUID {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[8:], r.Uint64())
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	sub := uint16(t.Nanosecond() % 1e6 * 4096 / 1e6)
	u[6] = 0x70 | byte(sub>>8)
	u[7] = byte(sub)
	u[8] = u[8]&0x3f | 0x80
	return u
}
