KIND = "TimeChaos"

VALID = [
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: TimeChaos
metadata:
  name: time-shift-back
  namespace: chaos-mesh
spec:
  mode: one
  selector:
    labelSelectors:
      app: app1
  timeOffset: -10m100ns
  duration: 5m
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: TimeChaos
metadata:
  name: time-shift-forward
  namespace: billing
spec:
  mode: all
  selector:
    namespaces: [billing]
    labelSelectors:
      app: invoicer
  containerNames: [invoicer]
  timeOffset: 24h
  clockIds: [CLOCK_REALTIME, CLOCK_MONOTONIC]
  duration: 10m
""",
]

INVALID = [
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: TimeChaos
metadata:
  name: time-no-offset
  namespace: chaos-mesh
spec:
  mode: one
  selector:
    labelSelectors:
      app: app1
  clockIds: [CLOCK_REALTIME]
""",
        "spec.timeOffset",
        "is required",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: TimeChaos
metadata:
  name: time-bad-clock
  namespace: chaos-mesh
spec:
  mode: one
  selector:
    labelSelectors:
      app: app1
  timeOffset: 1h
  clockIds: [CLOCK_WALL]
""",
        "spec.clockIds[0]",
        "is not one of",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: TimeChaos
metadata:
  name: time-bad-offset
  namespace: chaos-mesh
spec:
  mode: one
  selector:
    labelSelectors:
      app: app1
  timeOffset: 10 minutes
""",
        "spec.timeOffset",
        "is not a duration",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: TimeChaos
metadata:
  name: time-zero-offset
  namespace: chaos-mesh
spec:
  mode: one
  selector:
    labelSelectors:
      app: app1
  timeOffset: 0s
""",
        "spec.timeOffset",
        "must not be zero",
    ),
]
