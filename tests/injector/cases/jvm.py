KIND = "JVMChaos"


def _manifest(name: str, body: str) -> str:
    """A JVMChaos on the `helloworld` app with `body` as the rest of its spec."""
    return f"""
apiVersion: chaos-mesh.org/v1alpha1
kind: JVMChaos
metadata:
  name: {name}
  namespace: app
spec:
  mode: all
  selector:
    labelSelectors:
      app: springboot-jmx-demo
  containerNames: [springboot]
  duration: 30s
{body}"""


VALID = [
    _manifest("jvm-latency", """\
  action: latency
  class: com.example.demo.DemoApplication
  method: sayHello
  latency: 1000
  port: 9288
"""),
    _manifest("jvm-return", """\
  action: return
  class: Main
  method: getnum
  value: "9999"
"""),
    _manifest("jvm-exception", """\
  action: exception
  class: Main
  method: sayhello
  exception: java.io.IOException("BOOM")
"""),
    _manifest("jvm-stress-cpu", """\
  action: stress
  cpuCount: 2
"""),
    _manifest("jvm-stress-memory", """\
  action: stress
  memType: heap
  pid: 1
"""),
    _manifest("jvm-gc", """\
  action: gc
"""),
    _manifest("jvm-rule-data", """\
  action: ruleData
  name: fail-say-hello
  ruleData: |
    RULE fail-say-hello
    CLASS Main
    METHOD sayhello
    AT ENTRY
    IF true
    DO
      throw new java.io.IOException("BOOM");
    ENDRULE
"""),
    _manifest("jvm-mysql", """\
  action: mysql
  mysqlConnectorVersion: "8"
  database: test
  table: t1
  sqlType: select
  latency: 2000
"""),
]

INVALID = [
    (_manifest("jvm-latency-no-method", """\
  action: latency
  class: Main
  latency: 1000
"""), "spec.method", "is required"),
    (_manifest("jvm-latency-zero", """\
  action: latency
  class: Main
  method: sayhello
  latency: 0
"""), "spec.latency", "below the minimum of 1"),
    (_manifest("jvm-return-no-value", """\
  action: return
  class: Main
  method: getnum
"""), "spec.value", "is required"),
    (_manifest("jvm-exception-bad-class", """\
  action: exception
  class: com.example..Main
  method: sayhello
  exception: java.io.IOException("BOOM")
"""), "spec.class", "a fully qualified Java class name"),
    (_manifest("jvm-stress-both", """\
  action: stress
  cpuCount: 2
  memType: heap
"""), "spec.memType", "not both"),
    (_manifest("jvm-gc-bad-port", """\
  action: gc
  port: 70000
"""), "spec.port", "above the maximum of 65535"),
    (_manifest("jvm-rule-data-empty", """\
  action: ruleData
  ruleData: ""
"""), "spec.ruleData", "must not be empty"),
    (_manifest("jvm-mysql-bad-version", """\
  action: mysql
  mysqlConnectorVersion: "6"
  exception: connection refused
"""), "spec.mysqlConnectorVersion", "is not one of"),
    (_manifest("jvm-mysql-nothing", """\
  action: mysql
  mysqlConnectorVersion: "5"
  database: test
"""), "spec.latency", "give at least one of: latency, exception"),
]
