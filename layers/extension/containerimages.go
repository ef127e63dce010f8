package extension

import (
	"encoding/json"
	"fmt"
	"strings"
)

// ContainerImage is one entry of the sealer.image.container.images
// annotation: a container image cached in the cluster image.
type ContainerImage struct {
	// Image is the normalized reference, e.g. "docker.io/library/nginx:1.25".
	Image string `json:"image"`
	// AppName is the app the image belongs to, if any.
	AppName  string    `json:"appName,omitempty"`
	Platform *Platform `json:"platform"`
}

// Platform is a container image's platform as sealer writes it.
type Platform struct {
	Architecture string `json:"architecture,omitempty"`
	OS           string `json:"os,omitempty"`
	Variant      string `json:"variant,omitempty"`
}

// ParseContainerImages decodes the value of a
// sealer.image.container.images annotation.
func ParseContainerImages(annotation string) ([]ContainerImage, error) {
	if !strings.HasPrefix(strings.TrimLeft(annotation, " \t\r\n"), "[") {
		return nil, fmt.Errorf("decode %s annotation: not a JSON array", AnnotationContainerImages)
	}
	var list []ContainerImage
	if err := json.Unmarshal([]byte(annotation), &list); err != nil {
		return nil, fmt.Errorf("decode %s annotation: %w", AnnotationContainerImages, err)
	}
	for i, c := range list {
		if c.Image == "" {
			return nil, fmt.Errorf("decode %s annotation: entry %d has no image", AnnotationContainerImages, i)
		}
	}
	return list, nil
}

// ContainerImagesAnnotation encodes list as the value of a
// sealer.image.container.images annotation.
func ContainerImagesAnnotation(list []ContainerImage) (string, error) {
	if list == nil {
		list = []ContainerImage{}
	}
	b, err := json.Marshal(list)
	if err != nil {
		return "", fmt.Errorf("encode %s annotation: %w", AnnotationContainerImages, err)
	}
	return string(b), nil
}
