"""Translate infra/template.yaml into plain CloudFormation, as `sam deploy` does.

Usage: sam_translate.py TEMPLATE OUT.json [--bucket NAME] [--param KEY=VALUE ...]

`sam package` uploads every local artifact and rewrites its path to an S3 location;
`sam deploy` then hands the template to CloudFormation, whose
`AWS::Serverless-2016-10-31` transform is SAM's translator. This script does both
rewrites the same way (functions' `CodeUri` -> `s3://BUCKET/functions/<Binary>.zip`,
state machines' `DefinitionUri` -> `s3://BUCKET/statemachines/<file>`) and runs the
same translator (`samtranslator`, the library `sam validate` uses), so the output is
what CloudFormation would create. The translated template goes to OUT.json and the
artifacts to upload (logical id, local path or binary, bucket key) to `artifacts.json`
beside it.

Exit status: 0 translated; 1 the translator refused the template (its messages on
stderr, one per line); 2 usage or I/O errors.
"""

import argparse
import json
import os

# The translator resolves AWS::Region; CloudFormation knows it, a local run must say it.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
import sys

import yaml
from samcli.yamlhelper import yaml_parse
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform


class NoManagedPolicies:
    """Lapse names AWS-managed policies by ARN only, so the translator never needs
    the account's managed-policy list (which needs IAM credentials)."""

    def load(self):
        return {}


def package(template: dict, template_dir: str, bucket: str) -> list:
    """Rewrites local artifact paths to S3 locations; returns what to upload."""
    artifacts = []
    for logical_id, resource in template.get("Resources", {}).items():
        kind = resource.get("Type")
        props = resource.setdefault("Properties", {})
        if kind == "AWS::Serverless::Function":
            binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
            if not binary:
                raise ValueError(f"{logical_id}: Metadata.BuildProperties.Binary is required")
            key = f"functions/{binary}.zip"
            props["CodeUri"] = f"s3://{bucket}/{key}"
            artifacts.append({"logical_id": logical_id, "kind": "function", "binary": binary, "key": key})
        elif kind == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            local = os.path.normpath(os.path.join(template_dir, props["DefinitionUri"]))
            key = f"statemachines/{os.path.basename(local)}"
            props["DefinitionUri"] = f"s3://{bucket}/{key}"
            artifacts.append({"logical_id": logical_id, "kind": "definition", "path": local, "key": key})
    return artifacts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("template")
    parser.add_argument("out")
    parser.add_argument("--bucket", default="lapse-artifacts")
    parser.add_argument("--param", action="append", default=[], help="KEY=VALUE parameter value")
    args = parser.parse_args()
    try:
        with open(args.template, encoding="utf-8") as f:
            template = yaml_parse(f.read())
        params = dict(p.split("=", 1) for p in args.param)
        artifacts = package(template, os.path.dirname(os.path.abspath(args.template)), args.bucket)
    except (OSError, ValueError, yaml.YAMLError) as err:
        print(f"sam_translate: {args.template}: {err}", file=sys.stderr)
        return 2
    try:
        translated = transform(template, params, NoManagedPolicies())
    except InvalidDocumentException as err:
        for cause in err.causes:
            print(f"sam_translate: {cause}", file=sys.stderr)
        return 1
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(translated, f, indent=1, sort_keys=True)
    with open(os.path.join(os.path.dirname(os.path.abspath(args.out)), "artifacts.json"), "w", encoding="utf-8") as f:
        json.dump(artifacts, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
