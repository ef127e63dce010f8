package extension_test

import (
	"context"
	"fmt"
	"strings"
	"testing/fstest"

	"github.com/drove-project/drove/layers/extension"
	"github.com/drove-project/drove/layers/kubefile"
)

// Example shows the builder's flow: parse, resolve FROM, validate against
// the base image's apps, expand, then build the extension.
func Example() {
	text := `ARG NS=demo
FROM scratch
# an ARG before FROM must be declared again to be seen after it
ARG NS
COPY ${ARCH}/bin bin
APP web local://web
APPENV web NS=$NS
LAUNCH ["web"]
`
	k, err := kubefile.Parse("Kubefile", strings.NewReader(text))
	if err != nil {
		panic(err)
	}
	from, _ := k.From(nil) // pull from.Args[0] unless it is scratch
	var base *extension.ImageExtension
	if err := k.Validate(nil); err != nil { // base.AppNames() for a real base
		panic(err)
	}
	steps, warnings, err := k.Steps(map[string]string{"NS": "prod"}, nil)
	if err != nil {
		panic(err)
	}
	ctxFS := fstest.MapFS{"web/deploy.yaml": {}, "web/svc.yaml": {}}
	in := extension.Input{File: k.File, Steps: steps, Context: ctxFS, Arch: "arm64", Base: base, Type: extension.AppInstaller, Version: "v0.1.0"}
	for _, s := range steps {
		switch s.Cmd {
		case kubefile.Copy:
			fmt.Println("COPY", kubefile.ResolveArch(s.Args[0], in.Arch), "->", s.Args[1])
		case kubefile.App:
			paths, _ := in.SourcePaths(s.Args[1:])
			fmt.Println("APP", paths, "->", extension.AppRoot(s.Args[0]))
		}
	}
	ext, labels, err := extension.Build(context.Background(), in)
	if err != nil {
		panic(err)
	}
	annotation, _ := ext.Annotation()
	fmt.Println(from.Args[0], len(warnings), len(labels))
	fmt.Println(annotation)
	fmt.Println(ext.LaunchCmds())
	// Output:
	// COPY arm64/bin -> bin
	// APP [web] -> application/apps/web/
	// scratch 0 0
	// {"buildClient":{"sealerVersion":"v0.1.0","buildahVersion":""},"schemaVersion":"v1alpha1","type":"app-installer","applications":[{"name":"web","type":"kube","files":["deploy.yaml","svc.yaml"],"version":"v1","env":{"NS":"prod"}}],"launch":{"app_names":["web"]}}
	// [kubectl apply -f application/apps/web/deploy.yaml && kubectl apply -f application/apps/web/svc.yaml]
}
