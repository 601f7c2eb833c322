"""AWSChaos: stop or restart an EC2 instance, or detach an EBS volume from it, through the AWS API.

The spec names the instance itself (no selector, no mode). Credentials are referenced by
`secretName`, never written in the manifest: an inline key is an unknown field and refused.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .common import REMOTE_CLUSTER, SECRET_NAME
from .model import Action, Capability, Kind, SelectorKind, Target
from .params import Field, FieldError, Str

REGION = Str(
    min_length=1,
    max_length=32,
    pattern=r"[a-z]{2}(-[a-z]+)+-\d{1,2}",
    pattern_help="an AWS region such as us-east-1 or eu-central-1",
)


class EndpointURL(Str):
    """An http(s) URL with a host and nothing after the port but an optional path."""

    def parse(self, value: Any, path: str) -> str:
        text = super().parse(value, path)
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            raise FieldError(path, f"{text!r} is not a URL: the port must be a number from 1 to 65535") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FieldError(path, f"{text!r} is not an http(s) URL such as https://ec2.us-east-1.amazonaws.com")
        if port == 0 or parts.query or parts.fragment or parts.username or parts.password:
            raise FieldError(path, f"{text!r}: give only scheme, host, port and path (no user, query or fragment)")
        return text


COMMON = (
    SECRET_NAME,
    Field("awsRegion", REGION, required=True, label="Region", help="The AWS region of the instance, e.g. us-east-1."),
    Field(
        "ec2Instance",
        Str(pattern=r"i-[0-9a-f]{8,17}", pattern_help="an EC2 instance ID such as i-0123456789abcdef0"),
        required=True,
        label="EC2 instance",
        help="The ID of the instance, e.g. i-0123456789abcdef0.",
    ),
    Field(
        "endpoint",
        EndpointURL(max_length=2048),
        label="API endpoint",
        help="Another AWS API endpoint (Chaos Mesh uses it for tests, e.g. LocalStack); default: AWS's own.",
    ),
    REMOTE_CLUSTER,
)

INSTANCE = frozenset({Target.CLOUD_INSTANCE})

KIND = Kind(
    name="AWSChaos",
    label="AWS fault",
    help="Stop or restart an EC2 instance, or detach an EBS volume from it.",
    selector=SelectorKind.CLOUD,
    common_fields=COMMON,
    actions=(
        Action(
            name="ec2-stop",
            label="Stop EC2 instance",
            help="Stop the instance for the duration; it is started again at recovery.",
            fields=(),
            targets=INSTANCE,
            capability=Capability.AWS_API,
        ),
        Action(
            name="ec2-restart",
            label="Restart EC2 instance",
            help="Reboot the instance once.",
            fields=(),
            targets=INSTANCE,
            capability=Capability.AWS_API,
            one_shot=True,
        ),
        Action(
            name="detach-volume",
            label="Detach EBS volume",
            help="Detach a volume from the instance for the duration; it is attached again at recovery.",
            fields=(
                Field(
                    "volumeID",
                    Str(pattern=r"vol-[0-9a-f]{8,17}", pattern_help="an EBS volume ID such as vol-0123456789abcdef0"),
                    required=True,
                    label="Volume",
                    help="The ID of the EBS volume, e.g. vol-0123456789abcdef0.",
                ),
                Field(
                    "deviceName",
                    Str(
                        max_length=32,
                        pattern=r"/dev/[a-z][a-z0-9]{1,15}",
                        pattern_help="a device path such as /dev/sdf or /dev/xvdf",
                    ),
                    required=True,
                    label="Device",
                    help="The device name the volume is attached as, e.g. /dev/sdf; used to attach it again.",
                ),
            ),
            targets=frozenset({Target.VOLUME}),
            capability=Capability.AWS_API,
        ),
    ),
)
