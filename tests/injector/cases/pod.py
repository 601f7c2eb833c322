KIND = "PodChaos"

VALID = [
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata:
  name: pod-kill
  namespace: chaos-testing
spec:
  action: pod-kill
  mode: one
  gracePeriod: 30
  selector:
    namespaces: [tidb-cluster-demo]
    labelSelectors:
      app.kubernetes.io/component: tikv
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata:
  name: pod-failure
spec:
  action: pod-failure
  mode: fixed
  value: "2"
  duration: 30s
  selector:
    pods:
      web: [web-0, web-1, web-2]
    podPhaseSelectors: [Running]
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata:
  name: container-kill
  labels: {team: payments}
  annotations: {chaosplane.io/description: "Kill the sidecar"}
spec:
  action: container-kill
  mode: fixed-percent
  value: "50"
  containerNames: [prometheus]
  selector:
    expressionSelectors:
      - {key: tier, operator: In, values: [backend]}
      - {key: canary, operator: DoesNotExist}
""",
]

INVALID = [
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata: {name: bad-grace}
spec:
  action: pod-kill
  mode: one
  gracePeriod: -1
  selector: {namespaces: [a]}
""",
        "spec.gracePeriod",
        "below the minimum",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata: {name: bad-failure}
spec:
  action: pod-failure
  mode: one
  duration: forever
  selector: {namespaces: [a]}
""",
        "spec.duration",
        "is not a duration",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata: {name: no-containers}
spec:
  action: container-kill
  mode: one
  selector: {namespaces: [a]}
""",
        "spec.containerNames",
        "is required",
    ),
]
