KIND = "IOChaos"

VALID = [
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: IOChaos
metadata:
  name: io-latency
  namespace: chaos-mesh
spec:
  action: latency
  mode: one
  selector:
    labelSelectors:
      app: etcd
  volumePath: /var/run/etcd
  path: /var/run/etcd/**/*
  delay: 100ms
  percent: 50
  duration: 400s
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: IOChaos
metadata:
  name: io-fault
  namespace: chaos-mesh
spec:
  action: fault
  mode: one
  selector:
    labelSelectors:
      app: etcd
  containerNames: [etcd]
  volumePath: /var/run/etcd
  path: /var/run/etcd/**/*
  methods: [read, write, fsync]
  errno: 5
  percent: 50
  duration: 400s
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: IOChaos
metadata:
  name: io-attr
  namespace: chaos-mesh
spec:
  action: attrOverride
  mode: one
  selector:
    labelSelectors:
      app: etcd
  volumePath: /var/run/etcd
  path: /var/run/etcd/**/*
  attr:
    perm: 72
    size: 0
    kind: regularFile
    mtime:
      sec: 1700000000
      nsec: 0
  percent: 10
  duration: 400s
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: IOChaos
metadata:
  name: io-mistake
  namespace: chaos-mesh
spec:
  action: mistake
  mode: one
  selector:
    labelSelectors:
      app: etcd
  volumePath: /var/run/etcd
  path: /var/run/etcd/**/*
  mistake:
    filling: zero
    maxOccurrences: 1
    maxLength: 10
  methods: [read, write]
  percent: 10
  duration: 400s
""",
]

INVALID = [
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: IOChaos
metadata:
  name: io-latency-no-delay
  namespace: chaos-mesh
spec:
  action: latency
  mode: one
  selector:
    labelSelectors:
      app: etcd
  volumePath: /var/run/etcd
  duration: 400s
""",
        "spec.delay",
        "is required",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: IOChaos
metadata:
  name: io-fault-errno-zero
  namespace: chaos-mesh
spec:
  action: fault
  mode: one
  selector:
    labelSelectors:
      app: etcd
  volumePath: /var/run/etcd
  errno: 0
""",
        "spec.errno",
        "below the minimum of 1",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: IOChaos
metadata:
  name: io-attr-bad-kind
  namespace: chaos-mesh
spec:
  action: attrOverride
  mode: one
  selector:
    labelSelectors:
      app: etcd
  volumePath: /var/run/etcd
  attr:
    kind: file
""",
        "spec.attr.kind",
        "is not one of",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: IOChaos
metadata:
  name: io-mistake-zero-length
  namespace: chaos-mesh
spec:
  action: mistake
  mode: one
  selector:
    labelSelectors:
      app: etcd
  volumePath: /var/run/etcd
  mistake:
    filling: random
    maxOccurrences: 2
    maxLength: 0
""",
        "spec.mistake.maxLength",
        "below the minimum of 1",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: IOChaos
metadata:
  name: io-bad-method
  namespace: chaos-mesh
spec:
  action: latency
  mode: one
  selector:
    labelSelectors:
      app: etcd
  volumePath: /var/run/etcd
  delay: 10ms
  methods: [read, wirte]
""",
        "spec.methods[1]",
        "is not one of",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: IOChaos
metadata:
  name: io-bad-percent
  namespace: chaos-mesh
spec:
  action: fault
  mode: one
  selector:
    labelSelectors:
      app: etcd
  volumePath: /var/run/etcd
  errno: 28
  percent: 150
""",
        "spec.percent",
        "above the maximum of 100",
    ),
]
