package protocol

// The "images" action makes the container images cached in a delivered
// cluster image (Action.Rootfs) pullable on a node by their original
// names: the agent points containerd's hosts files at its node mirror and,
// with EnvImagesImport, imports the images. Its parameters are Env values.
const (
	ActionImages = "images"
	// EnvImagesImport "true" also imports the images into containerd.
	EnvImagesImport = "DROVE_IMAGES_IMPORT"
	// EnvContainerdAddress overrides the agent's containerd socket (k3s
	// and k0s run their own containerd).
	EnvContainerdAddress = "DROVE_CONTAINERD_ADDRESS"
	// EnvContainerdNamespace is where images are imported; default k8s.io,
	// the kubelet's.
	EnvContainerdNamespace = "DROVE_CONTAINERD_NAMESPACE"
	// EnvRegistryAliases are more registry names, comma-joined, whose pulls
	// go to the node mirror: sealer-built images name sea.hub:5000.
	EnvRegistryAliases = "DROVE_REGISTRY_ALIASES"
	// EnvCertsDir overrides the agent's containerd hosts directory.
	EnvCertsDir = "DROVE_CERTS_DIR"
)
