package imagecache

// Temporary: pins the modules the imagecache work needs while it is built
// in parallel. Removed once real imports exist.
import (
	_ "github.com/containerd/containerd/v2/client"
	_ "github.com/containerd/containerd/v2/core/images/archive"
	_ "github.com/containerd/containerd/v2/core/content"
	_ "github.com/containerd/platforms"
	_ "helm.sh/helm/v4/pkg/chart/common/util"
	_ "helm.sh/helm/v4/pkg/chart/v2/loader"
	_ "helm.sh/helm/v4/pkg/engine"
)
