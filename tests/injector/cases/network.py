KIND = "NetworkChaos"

VALID = [
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: delay, namespace: default}
spec:
  action: delay
  mode: one
  selector:
    namespaces: [default]
    labelSelectors: {app: web-show}
  delay:
    latency: 10ms
    correlation: "100"
    jitter: 0ms
    reorder: {reorder: "10", correlation: "50", gap: 5}
  duration: 30s
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: loss}
spec:
  action: loss
  mode: all
  selector: {namespaces: [default]}
  loss: {loss: "25", correlation: "25"}
  direction: both
  target:
    mode: fixed
    value: "1"
    selector: {namespaces: [db]}
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: duplicate}
spec:
  action: duplicate
  mode: one
  selector: {namespaces: [default]}
  duplicate: {duplicate: 40, correlation: 25}
  device: eth0
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: corrupt}
spec:
  action: corrupt
  mode: one
  selector: {namespaces: [default]}
  corrupt: {corrupt: "40"}
  externalTargets: [www.example.com, 10.0.0.0/8, "192.168.1.10:8080"]
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: netem}
spec:
  action: netem
  mode: all
  selector: {namespaces: [default]}
  delay: {latency: 1.5s}
  loss: {loss: "0.5"}
  rate: {rate: 8mbit}
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: partition}
spec:
  action: partition
  mode: all
  selector:
    namespaces: [tidb-cluster-demo]
    labelSelectors: {app.kubernetes.io/component: tikv}
  direction: to
  target:
    mode: all
    selector:
      namespaces: [tidb-cluster-demo]
      labelSelectors: {app.kubernetes.io/component: pd}
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: bandwidth}
spec:
  action: bandwidth
  mode: all
  selector: {namespaces: [default]}
  bandwidth: {rate: 1mbps, limit: 20971520, buffer: 10000, peakrate: 2000000, minburst: 1500}
""",
]

INVALID = [
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: bad-latency}
spec:
  action: delay
  mode: one
  selector: {namespaces: [default]}
  delay: {latency: abc}
""",
        "spec.delay.latency",
        '"abc" is not a duration',
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: bad-loss}
spec:
  action: loss
  mode: one
  selector: {namespaces: [default]}
  loss: {loss: "120"}
""",
        "spec.loss.loss",
        "out of range",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: bad-duplicate}
spec:
  action: duplicate
  mode: one
  selector: {namespaces: [default]}
  duplicate: {duplicate: "10", correlation: lots}
""",
        "spec.duplicate.correlation",
        "is not a percentage",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: bad-corrupt}
spec:
  action: corrupt
  mode: one
  selector: {namespaces: [default]}
  corrupt: {corrupt: "10"}
  externalTargets: ["not a host"]
""",
        "spec.externalTargets[0]",
        "is not an IP address, a CIDR or a host name",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: empty-netem}
spec:
  action: netem
  mode: one
  selector: {namespaces: [default]}
""",
        "spec.delay",
        "give at least one of",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: bad-direction}
spec:
  action: partition
  mode: one
  selector: {namespaces: [default]}
  direction: sideways
""",
        "spec.direction",
        "is not one of: to, from, both",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: {name: bad-rate}
spec:
  action: bandwidth
  mode: one
  selector: {namespaces: [default]}
  bandwidth: {rate: fast, limit: 1, buffer: 1}
""",
        "spec.bandwidth.rate",
        "is not a rate",
    ),
]
