// Command drove builds cluster images and installs clusters from them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/drove-project/drove/cmd/drove/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], cli.SystemStreams())
	stop()
	os.Exit(code)
}
