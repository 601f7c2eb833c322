KIND = "KernelChaos"

VALID = [
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: KernelChaos
metadata:
  name: kernel-slab-on-mount
  namespace: chaos-mesh
spec:
  mode: one
  selector:
    namespaces: [chaos-mount]
  failKernRequest:
    callchain:
      - funcname: __x64_sys_mount
      - funcname: d_alloc_parallel
        parameters: "struct dentry *parent, const struct qstr *name"
        predicate: 'STRNCMP(name->name, "bananas", 8)'
    failtype: 0
    headers: [linux/mmzone.h]
    probability: 10
    times: 1
  duration: 60s
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: KernelChaos
metadata:
  name: kernel-bio
  namespace: storage
spec:
  mode: fixed
  value: "1"
  selector:
    labelSelectors:
      app: minio
  failKernRequest:
    failtype: 2
    probability: 1
""",
]

INVALID = [
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: KernelChaos
metadata:
  name: kernel-bad-failtype
  namespace: chaos-mesh
spec:
  mode: one
  selector:
    namespaces: [chaos-mount]
  failKernRequest:
    failtype: 3
""",
        "spec.failKernRequest.failtype",
        "is not one of: 0, 1, 2",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: KernelChaos
metadata:
  name: kernel-no-failtype
  namespace: chaos-mesh
spec:
  mode: one
  selector:
    namespaces: [chaos-mount]
  failKernRequest:
    probability: 50
""",
        "spec.failKernRequest.failtype",
        "is required",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: KernelChaos
metadata:
  name: kernel-bad-probability
  namespace: chaos-mesh
spec:
  mode: one
  selector:
    namespaces: [chaos-mount]
  failKernRequest:
    failtype: 1
    probability: 101
""",
        "spec.failKernRequest.probability",
        "above the maximum of 100",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: KernelChaos
metadata:
  name: kernel-frame-without-function
  namespace: chaos-mesh
spec:
  mode: one
  selector:
    namespaces: [chaos-mount]
  failKernRequest:
    failtype: 0
    callchain:
      - predicate: "1"
""",
        "spec.failKernRequest.callchain[0].funcname",
        "is required",
    ),
]
