// Command pms is the product management service: an HTTP API for a product
// catalogue, and the tools to run it.
package main

import (
	"os"

	"github.com/pms-dev/pms/cmd"
)

func main() {
	os.Exit(cmd.Execute())
}
