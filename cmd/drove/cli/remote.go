package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/drove-project/drove/layers/registry"
	"github.com/drove-project/drove/layers/store"
)

func newPushCmd(g *Globals) *cobra.Command {
	var rf registryFlags
	cmd := &cobra.Command{
		Use:   "push IMAGE [DESTINATION]",
		Short: "Upload a local image to an OCI registry",
		Long: `push uploads a local image (every platform of an index) to the registry its
name points at, or to DESTINATION if given. Credentials come from "drove
login" (a docker config.json).`,
		Example: "  drove push registry.example.com/infra/k8s:v1.28\n  drove push k8s:v1.28 127.0.0.1:5000/k8s:v1.28",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dst := args[0]
			if len(args) == 2 {
				dst = args[1]
			}
			return runPush(cmd.Context(), g, args[0], dst, rf.options())
		},
	}
	rf.add(cmd.Flags())
	return cmd
}

func runPush(ctx context.Context, g *Globals, src, dst string, opts registry.Options) error {
	s, err := g.Store()
	if err != nil {
		return err
	}
	e, err := s.Resolve(src)
	if err != nil {
		return err
	}
	var obj remote.Taggable
	if e.Descriptor.MediaType.IsIndex() {
		obj, err = s.Index(e.Descriptor.Digest)
	} else {
		obj, err = s.Image(e.Descriptor.Digest)
	}
	if err != nil {
		return err
	}
	rep := g.Progress()
	tr := rep.Track("push " + dst)
	opts.Progress = tr.Set
	err = registry.Push(ctx, dst, obj, opts)
	tr.Done(err)
	rep.Wait()
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Out, "%s@%s\n", dst, e.Descriptor.Digest)
	return nil
}

func newPullCmd(g *Globals) *cobra.Command {
	var rf registryFlags
	var platform string
	cmd := &cobra.Command{
		Use:   "pull IMAGE",
		Short: "Download an image from an OCI registry into the local store",
		Long: `pull downloads an image into the local store. An image index is pulled whole
(every platform: a cluster may mix architectures) unless --platform picks one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := rf.options()
			if platform != "" {
				p, err := v1.ParsePlatform(platform)
				if err != nil || p.OS == "" || p.Architecture == "" {
					return usageErrorf("--platform %q: want OS/ARCH[/VARIANT]", platform)
				}
				opts.Platform = p
			}
			return runPull(cmd.Context(), g, args[0], opts)
		},
	}
	rf.add(cmd.Flags())
	cmd.Flags().StringVar(&platform, "platform", "", "pull only this platform of an index, e.g. linux/arm64")
	return cmd
}

func runPull(ctx context.Context, g *Globals, ref string, opts registry.Options) error {
	s, err := g.Store()
	if err != nil {
		return err
	}
	pulled, err := registry.Pull(ctx, ref, opts)
	if err != nil {
		return err
	}
	rep := g.Progress()
	tr := rep.Track("pull " + ref)
	wo := store.WriteOptions{Progress: tr.Set}
	var desc v1.Descriptor
	if pulled.Index != nil {
		desc, err = s.WriteIndex(ctx, pulled.Index, wo)
	} else {
		desc, err = s.WriteImage(ctx, pulled.Image, wo)
	}
	tr.Done(err)
	rep.Wait()
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	if err := s.Tag(ref, desc); err != nil {
		return err
	}
	fmt.Fprintf(g.Out, "%s\n", desc.Digest)
	return nil
}

type loginOptions struct {
	Registry      string
	Username      string
	Password      string
	PasswordStdin bool
	Flags         registryFlags
}

func newLoginCmd(g *Globals) *cobra.Command {
	o := &loginOptions{}
	cmd := &cobra.Command{
		Use:   "login REGISTRY",
		Short: "Save credentials for a registry (docker config.json format)",
		Long: `login checks a username and password against REGISTRY and, if the registry
accepts them, saves them in the credentials file (--authfile, else
$DOCKER_CONFIG/config.json or ~/.docker/config.json), so docker, skopeo and
drove share them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Registry = args[0]
			if o.PasswordStdin {
				b, err := io.ReadAll(io.LimitReader(g.In, 64<<10))
				if err != nil {
					return err
				}
				o.Password = strings.TrimRight(string(b), "\r\n")
			}
			if o.Username == "" {
				return usageErrorf("login needs a username: -u USER")
			}
			if o.Password == "" {
				pw, err := promptPassword(g)
				if err != nil {
					return err
				}
				o.Password = pw
			}
			return runLogin(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Username, "username", "u", "", "username")
	f.StringVarP(&o.Password, "password", "p", "", "password (prefer --password-stdin)")
	f.BoolVar(&o.PasswordStdin, "password-stdin", false, "read the password from stdin")
	o.Flags.add(f)
	return cmd
}

func promptPassword(g *Globals) (string, error) {
	type fder interface{ Fd() uintptr }
	f, ok := g.In.(fder)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usageErrorf("login needs a password: -p PASSWORD or --password-stdin")
	}
	fmt.Fprint(g.Err, "Password: ")
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(g.Err)
	return string(b), err
}

func runLogin(ctx context.Context, g *Globals, o *loginOptions) error {
	if err := registry.Login(ctx, o.Registry, o.Username, o.Password, o.Flags.options()); err != nil {
		return err
	}
	fmt.Fprintf(g.Out, "Login Succeeded: %s\n", o.Registry)
	return nil
}

func newLogoutCmd(g *Globals) *cobra.Command {
	var rf registryFlags
	cmd := &cobra.Command{
		Use:   "logout REGISTRY",
		Short: "Remove saved credentials for a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := registry.Logout(args[0], rf.options()); err != nil {
				return err
			}
			fmt.Fprintf(g.Out, "Removed login credentials for %s\n", args[0])
			return nil
		},
	}
	rf.add(cmd.Flags())
	return cmd
}
