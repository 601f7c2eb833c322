KIND = "StressChaos"

VALID = [
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: StressChaos
metadata:
  name: memory-stress
  namespace: chaos-mesh
spec:
  mode: one
  selector:
    labelSelectors:
      app: app1
  stressors:
    memory:
      workers: 4
      size: 256MB
      oomScoreAdj: -1000
  duration: 5m
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: StressChaos
metadata:
  name: cpu-and-memory-stress
  namespace: shop
spec:
  mode: fixed
  value: "2"
  selector:
    namespaces: [shop]
    labelSelectors:
      app: checkout
  containerNames: [checkout]
  stressors:
    cpu:
      workers: 2
      load: 80
    memory:
      workers: 1
      size: 50%
      options: ["--vm-hang 1"]
  duration: 10m
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: StressChaos
metadata:
  name: stress-ng-raw
  namespace: shop
spec:
  mode: one
  selector:
    labelSelectors:
      app: checkout
  stressngStressors: "--cpu 2 --cpu-load 50 --io 1"
  duration: 2m
""",
]

INVALID = [
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: StressChaos
metadata:
  name: stress-too-many-workers
  namespace: shop
spec:
  mode: one
  selector:
    labelSelectors:
      app: checkout
  stressors:
    cpu:
      workers: 10000
      load: 50
""",
        "spec.stressors.cpu.workers",
        "above the maximum of 8192",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: StressChaos
metadata:
  name: stress-nothing
  namespace: shop
spec:
  mode: one
  selector:
    labelSelectors:
      app: checkout
  duration: 2m
""",
        "spec.stressors",
        "give at least one of: stressors, stressngStressors",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: StressChaos
metadata:
  name: stress-bad-size
  namespace: shop
spec:
  mode: one
  selector:
    labelSelectors:
      app: checkout
  stressors:
    memory:
      workers: 1
      size: lots
""",
        "spec.stressors.memory.size",
        "is not a size",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: StressChaos
metadata:
  name: stress-bad-oom-score
  namespace: shop
spec:
  mode: one
  selector:
    labelSelectors:
      app: checkout
  stressors:
    memory:
      workers: 1
      size: 1GiB
      oomScoreAdj: 2000
""",
        "spec.stressors.memory.oomScoreAdj",
        "above the maximum of 1000",
    ),
]
