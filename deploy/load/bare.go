package main

import (
	"errors"
	"net/http"
	"os"

	"github.com/labstack/echo/v4"
)

// serveBare runs the ceiling the GET targets are compared with: a bare Echo
// handler, no middleware, answering every product path with the same JSON
// bytes. Arguments: the address and the file holding the bytes.
func serveBare(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: load bare ADDR FILE")
	}
	body, err := os.ReadFile(args[1])
	if err != nil {
		return err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/api/v1/products/:id", func(c echo.Context) error {
		return c.JSONBlob(http.StatusOK, body)
	})
	return e.Start(args[0])
}
