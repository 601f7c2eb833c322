KIND = "HTTPChaos"

VALID = [
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: HTTPChaos
metadata:
  name: http-abort
  namespace: shop
spec:
  mode: all
  selector:
    labelSelectors:
      app: payments
  target: Request
  port: 8080
  method: GET
  path: /api/*
  abort: true
  duration: 5m
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: HTTPChaos
metadata:
  name: http-delay
  namespace: shop
spec:
  mode: one
  selector:
    labelSelectors:
      app: payments
  target: Response
  port: 8080
  code: 200
  response_headers:
    Content-Type: application/json
  delay: 2s
  duration: 10m
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: HTTPChaos
metadata:
  name: http-replace
  namespace: shop
spec:
  mode: all
  selector:
    labelSelectors:
      app: payments
  target: Response
  port: 8080
  path: /api/orders
  replace:
    code: 503
    body: eyJlcnJvciI6ICJ1bmF2YWlsYWJsZSJ9
    headers:
      Retry-After: "30"
  duration: 5m
""",
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: HTTPChaos
metadata:
  name: http-patch
  namespace: shop
spec:
  mode: all
  selector:
    labelSelectors:
      app: payments
  target: Request
  port: 8080
  path: /api/*
  request_headers:
    X-Tenant: acme
  patch:
    body:
      type: JSON
      value: '{"currency": "XXX"}'
    queries:
      - [debug, "1"]
    headers:
      - [X-Chaos, "true"]
  duration: 5m
""",
]

INVALID = [
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: HTTPChaos
metadata:
  name: http-abort-no-port
  namespace: shop
spec:
  mode: all
  selector:
    labelSelectors:
      app: payments
  target: Request
  abort: true
  duration: 5m
""",
        "spec.port",
        "is required",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: HTTPChaos
metadata:
  name: http-delay-code-on-request
  namespace: shop
spec:
  mode: all
  selector:
    labelSelectors:
      app: payments
  target: Request
  port: 8080
  code: 500
  delay: 1s
""",
        "spec.code",
        "only applies with target Response",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: HTTPChaos
metadata:
  name: http-replace-bad-body
  namespace: shop
spec:
  mode: all
  selector:
    labelSelectors:
      app: payments
  target: Response
  port: 8080
  replace:
    body: '{"error": "plain text, not base64"}'
""",
        "spec.replace.body",
        "is not base64",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: HTTPChaos
metadata:
  name: http-patch-bad-pair
  namespace: shop
spec:
  mode: all
  selector:
    labelSelectors:
      app: payments
  target: Request
  port: 8080
  patch:
    headers:
      - [X-Chaos]
""",
        "spec.patch.headers[0]",
        "needs at least 2 items",
    ),
    (
        """
apiVersion: chaos-mesh.org/v1alpha1
kind: HTTPChaos
metadata:
  name: http-nothing-to-do
  namespace: shop
spec:
  mode: all
  selector:
    labelSelectors:
      app: payments
  target: Request
  port: 8080
  path: /api/*
""",
        "spec",
        "give at least one of: abort",
    ),
]
