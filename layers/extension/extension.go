// Package extension is sealer's image metadata: the ImageExtension stored
// as JSON in the sealer.image.extension annotation, the container image list
// in sealer.image.container.images, and the sealer labels. The JSON is
// field for field what sealer (v0.9 and later) writes and reads, so images
// built by drove and by sealer can use each other as bases.
//
// Build makes the extension of a new image from its expanded Kubefile steps;
// Parse reads the extension of a base image.
package extension

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Annotation keys.
const (
	// AnnotationExtension holds the JSON ImageExtension.
	AnnotationExtension = "sealer.image.extension"
	// AnnotationContainerImages holds the JSON list of ContainerImage
	// cached in the image's registry/ directory.
	AnnotationContainerImages = "sealer.image.container.images"
)

// Label keys.
const (
	// LabelContainerRuntimeType is "docker" (sealer's default) or "containerd".
	LabelContainerRuntimeType = "cluster.alpha.sealer.io/container-runtime-type"
	// LabelClusterRuntimeType is "kubernetes" (sealer's default) or "k0s".
	LabelClusterRuntimeType = "cluster.alpha.sealer.io/cluster-runtime-type"
	// LabelKubeCNIPrefix + app name is set to "true" by CNI.
	LabelKubeCNIPrefix = "cluster.alpha.sealer.io/kube-cni-"
	// LabelKubeCSIPrefix + app name is set to "true" by CSI.
	LabelKubeCSIPrefix = "cluster.alpha.sealer.io/kube-csi-"
	// LabelSupportedKubeVersion holds the KUBEVERSION constraint.
	LabelSupportedKubeVersion = "app.alpha.sealer.io/supported-kube-version"
)

// LabelKubeCNI returns the label that CNI name sets.
func LabelKubeCNI(name string) string { return LabelKubeCNIPrefix + name }

// LabelKubeCSI returns the label that CSI name sets.
func LabelKubeCSI(name string) string { return LabelKubeCSIPrefix + name }

// SchemaVersion is the only ImageExtension schema version sealer writes.
const SchemaVersion = "v1alpha1"

// Image types.
const (
	// KubeInstaller images install Kubernetes and then their apps.
	KubeInstaller = "kube-installer"
	// AppInstaller images install apps onto an existing cluster.
	AppInstaller = "app-installer"
)

// App types; an app whose type is not detected has Type "".
const (
	AppTypeHelm  = "helm"
	AppTypeKube  = "kube"
	AppTypeShell = "shell"
)

// AppVersion is the Application.Version sealer writes.
const AppVersion = "v1"

// ImageExtension is the value of the sealer.image.extension annotation.
type ImageExtension struct {
	BuildClient   BuildClient `json:"buildClient"`
	SchemaVersion string      `json:"schemaVersion"`
	// Type is KubeInstaller or AppInstaller.
	Type         string         `json:"type,omitempty"`
	Applications []*Application `json:"applications,omitempty"`
	// Labels is filled by sealer's inspect from the image config; builds
	// leave it empty.
	Labels map[string]string `json:"labels,omitempty"`
	// Env is the image's global env (ENV), overridable by the Clusterfile.
	Env    map[string]string `json:"env,omitempty"`
	Launch Launch            `json:"launch"`
}

// BuildClient records what built the image.
type BuildClient struct {
	SealerVersion  string `json:"sealerVersion"`
	BuildahVersion string `json:"buildahVersion"`
}

// Launch is what runs when a cluster is installed: Cmds (CMDS and CMD) if
// any, otherwise the launch commands of AppNames (LAUNCH).
type Launch struct {
	Cmds     []string `json:"cmds,omitempty"`
	AppNames []string `json:"app_names,omitempty"`
}

// Application is one APP, CNI or CSI.
type Application struct {
	Name string `json:"name"`
	// Type is AppTypeHelm, AppTypeKube, AppTypeShell or "" (not detected;
	// then Cmds is required).
	Type string `json:"type,omitempty"`
	// Files are the launch files relative to the app root: the manifests of
	// a kube app, the first source's scripts of a shell app, the app name
	// for a helm app.
	Files   []string `json:"files,omitempty"`
	Version string   `json:"version,omitempty"`
	// Env is APPENV: used to render the app's files and as the environment
	// of its commands; it takes precedence over the global env.
	Env map[string]string `json:"env,omitempty"`
	// Cmds is APPCMDS: it replaces the launch command of the type.
	Cmds []string `json:"cmds,omitempty"`
}

// ErrNotObject is returned by Parse for an annotation that is not a JSON
// object.
var ErrNotObject = errors.New("not a JSON object")

// Parse decodes the value of a sealer.image.extension annotation.
func Parse(annotation string) (*ImageExtension, error) {
	if !strings.HasPrefix(strings.TrimLeft(annotation, " \t\r\n"), "{") {
		return nil, fmt.Errorf("decode %s annotation: %w", AnnotationExtension, ErrNotObject)
	}
	var e ImageExtension
	if err := json.Unmarshal([]byte(annotation), &e); err != nil {
		return nil, fmt.Errorf("decode %s annotation: %w", AnnotationExtension, err)
	}
	for i, a := range e.Applications {
		if a == nil {
			return nil, fmt.Errorf("decode %s annotation: application %d is null", AnnotationExtension, i)
		}
	}
	return &e, nil
}

// Annotation encodes e as the value of the sealer.image.extension
// annotation.
func (e *ImageExtension) Annotation() (string, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return "", fmt.Errorf("encode %s annotation: %w", AnnotationExtension, err)
	}
	return string(b), nil
}

// App returns the application called name, or nil.
func (e *ImageExtension) App(name string) *Application {
	for _, a := range e.Applications {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// AppNames returns the names of the image's applications, for
// kubefile.Validate.
func (e *ImageExtension) AppNames() []string {
	names := make([]string, 0, len(e.Applications))
	for _, a := range e.Applications {
		names = append(names, a.Name)
	}
	return names
}

// clone returns a deep copy of a.
func (a *Application) clone() *Application {
	c := *a
	c.Files = append([]string(nil), a.Files...)
	c.Cmds = append([]string(nil), a.Cmds...)
	if a.Env != nil {
		c.Env = make(map[string]string, len(a.Env))
		for k, v := range a.Env {
			c.Env[k] = v
		}
	}
	return &c
}
