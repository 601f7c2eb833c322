KIND = "DNSChaos"

VALID = [
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: DNSChaos
metadata:
  name: dns-error
  namespace: default
spec:
  action: error
  mode: all
  patterns: ["google.com", "chaos-mesh.*", "github.?om"]
  selector:
    namespaces: [busybox]
  duration: 90s
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: DNSChaos
metadata:
  name: dns-random
  namespace: shop
spec:
  action: random
  mode: fixed-percent
  value: "50"
  selector:
    labelSelectors:
      app: checkout
  containerNames: [checkout]
  duration: 5m
""",
]

INVALID = [
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: DNSChaos
metadata:
  name: dns-error-bad-wildcard
  namespace: default
spec:
  action: error
  mode: all
  patterns: ["chaos-*.org"]
  selector:
    namespaces: [busybox]
  duration: 90s
""",
        "spec.patterns[0]",
        "not a domain pattern",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: DNSChaos
metadata:
  name: dns-random-bad-pattern
  namespace: default
spec:
  action: random
  mode: one
  patterns: ["google.com", "bad domain.com"]
  selector:
    namespaces: [busybox]
""",
        "spec.patterns[1]",
        "not a domain pattern",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: DNSChaos
metadata:
  name: dns-unknown-action
  namespace: default
spec:
  action: timeout
  mode: one
  selector:
    namespaces: [busybox]
""",
        "spec.action",
        "is not an action of DNSChaos",
    ),
]
