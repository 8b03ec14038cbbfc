"""What the AWS API would refuse in a SageMaker request, read from botocore's own service model.

botocore ships the shapes SageMaker checks a CreateTrainingJob request against: each field's pattern,
length and value range, and the list of training instance types. Checking them here turns an AWS
ValidationException (after credentials, a region and a round trip) into one line naming the option to
fix, before any call and in `--dry-run`. The model is botocore's, not a table kept here, so a newer
botocore knows newer instance types and regions. Without botocore (a plain checkout) nothing is checked
here and the job's own validation stands.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from typing import Any

# Request fields -> the launch script's option that sets them, so a problem names what to retype.
OPTIONS = {
    "TrainingJobName": "--job-name",
    "RoleArn": "--role",
    "AlgorithmSpecification.TrainingImage": "--image-uri",
    "OutputDataConfig.S3OutputPath": "--output-path",
    "CheckpointConfig.S3Uri": "--checkpoint-s3-uri",
    "InputDataConfig": "--train/--val/--rewards",
    "ResourceConfig.InstanceType": "--instance-type",
    "ResourceConfig.InstanceCount": "--instance-count",
    "ResourceConfig.VolumeSizeInGB": "--volume-size",
    "StoppingCondition.MaxRuntimeInSeconds": "--max-run-hours",
    "StoppingCondition.MaxWaitTimeInSeconds": "--max-wait-hours",
    "HyperParameters": "--hp",
    "Environment": "--env",
}
# What a pattern means, in words, for the fields people type by hand.
FORMS = {
    "RoleArn": "an IAM role ARN, arn:aws:iam::<12-digit account id>:role/<name>",
    "TrainingJobName": "1 to 63 letters, digits and hyphens, starting and ending with a letter or digit",
}


class AwsModelMissing(ImportError):
    """botocore is not installed: the request cannot be checked against the service model."""


def _service_model() -> Any:
    try:
        import botocore.session
    except ImportError as err:
        raise AwsModelMissing(str(err)) from err
    return botocore.session.get_session().get_service_model("sagemaker")


def request_problems(request: Mapping[str, Any]) -> list[str]:
    """One line per field of a CreateTrainingJob request that breaks the service model's constraints."""
    shape = _service_model().operation_model("CreateTrainingJob").input_shape
    return [f"{_option(path)}: {problem}" for path, problem in _walk(request, shape, "")]


def _option(path: str) -> str:
    for prefix, option in OPTIONS.items():
        if path == prefix or path.startswith((f"{prefix}.", f"{prefix}[")):
            return option
    return path


def _walk(value: Any, shape: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, problem) for every constraint of `shape` that `value` breaks, at any depth."""
    meta = shape.metadata
    if shape.type_name == "structure":
        for key, member in value.items():
            yield from _walk(member, shape.members[key], f"{path}.{key}" if path else key)
    elif shape.type_name == "list":
        if len(value) > meta.get("max", len(value)):
            yield path, f"at most {meta['max']} items, got {len(value)}"
        for item in value:
            yield from _walk(item, shape.member, path)
    elif shape.type_name == "map":
        for key, item in value.items():
            yield from _walk(key, shape.key, f"{path}[{key}] name")
            yield from _walk(item, shape.value, f"{path}[{key}]")
    elif shape.type_name == "string":
        yield from _string_problems(value, shape, path)
    elif shape.type_name in ("integer", "long"):
        if value < meta.get("min", value):
            yield path, f"must be at least {meta['min']}, got {value}"
        if value > meta.get("max", value):
            yield path, f"must be at most {meta['max']}, got {value}"


def _string_problems(value: str, shape: Any, path: str) -> Iterator[tuple[str, str]]:
    meta, field = shape.metadata, path.split("[")[0]
    fits = meta.get("min", 0) <= len(value) <= meta.get("max", len(value))
    if field in FORMS and not (fits and _matches(meta.get("pattern", ".*"), value)):
        yield path, f"{_shown(value)} is not {FORMS[field]}"
    elif not fits:
        yield path, f"must be {meta.get('min', 0)} to {meta['max']} characters long, got {len(value)}"
    elif "pattern" in meta and not _matches(meta["pattern"], value):
        yield path, f"{_shown(value)} is not of the form {meta['pattern']}"
    enum = meta.get("enum")
    if enum and value not in enum:
        close = difflib.get_close_matches(value, enum, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        yield path, f"{_shown(value)} is not a {shape.name} this botocore knows{hint}"


def _matches(pattern: str, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:  # a Java regular expression Python reads differently: the service decides
        return True


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def region_problem(region: str) -> str | None:
    """What is wrong with `region` (None when SageMaker is offered there, by botocore's endpoint data)."""
    try:
        import botocore.session
    except ImportError:
        return None
    session = botocore.session.get_session()
    known = {
        name
        for partition in session.get_available_partitions()
        for name in session.get_available_regions("sagemaker", partition_name=partition)
    }
    if region in known:
        return None
    close = difflib.get_close_matches(region, sorted(known), n=3, cutoff=0.6)
    return f"--region {region!r}: SageMaker is not offered there" + (
        f"; did you mean {', '.join(close)}?" if close else ""
    )


def console_links(region: str, job_name: str) -> dict[str, str]:
    """The AWS console pages of a training job and of its CloudWatch log streams."""
    console = f"https://{region}.console.aws.amazon.com"
    log_group = "$252Faws$252Fsagemaker$252FTrainingJobs"  # /aws/sagemaker/TrainingJobs, console-escaped
    return {
        "console": f"{console}/sagemaker/home?region={region}#/jobs/{job_name}",
        "logs": f"{console}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{log_group}"
        f"$3FlogStreamNameFilter$3D{job_name}$252F",
    }
