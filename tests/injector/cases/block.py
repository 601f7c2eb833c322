KIND = "BlockChaos"

VALID = [
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: BlockChaos
metadata:
  name: block-delay
  namespace: chaos-mesh
spec:
  action: delay
  mode: one
  selector:
    labelSelectors:
      app: hostpath-example
  volumeName: hostpath-example
  delay:
    latency: 1s
  duration: 60s
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: BlockChaos
metadata:
  name: block-delay-jitter
  namespace: db
spec:
  action: delay
  mode: all
  selector:
    namespaces: [db]
    labelSelectors:
      app: postgres
  containerNames: [postgres]
  volumeName: data
  delay:
    latency: 50ms
    jitter: 10ms
    correlation: "25"
  duration: 10m
""",
]

INVALID = [
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: BlockChaos
metadata:
  name: block-delay-no-latency
  namespace: chaos-mesh
spec:
  action: delay
  mode: one
  selector:
    labelSelectors:
      app: hostpath-example
  volumeName: hostpath-example
  delay:
    jitter: 10ms
""",
        "spec.delay.latency",
        "is required",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: BlockChaos
metadata:
  name: block-delay-no-volume
  namespace: chaos-mesh
spec:
  action: delay
  mode: one
  selector:
    labelSelectors:
      app: hostpath-example
  delay:
    latency: 1s
""",
        "spec.volumeName",
        "is required",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: BlockChaos
metadata:
  name: block-delay-bad-correlation
  namespace: chaos-mesh
spec:
  action: delay
  mode: one
  selector:
    labelSelectors:
      app: hostpath-example
  volumeName: hostpath-example
  delay:
    latency: 1s
    correlation: "150"
""",
        "spec.delay.correlation",
        "out of range",
    ),
]
