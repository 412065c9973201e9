"""Deploy rehearsal: create Lapse's stack in the local emulator as `sam deploy` would.

Usage: rehearse_deploy.py --endpoint URL --stack NAME --out FILE
                          [--template infra/template.yaml] [--param KEY=VALUE ...]

1. Translates the template exactly as `sam deploy` does after packaging
   (tools/sam_translate.py): functions point at zips in an artifact bucket, state
   machines at their definitions there. Both are uploaded to the emulator's S3.
2. Adapts a copy for the emulator where moto's CloudFormation falls short, and only
   there (see EMULATOR_GAPS; the template is never weakened). A resource type the
   translated template uses that moto skips and that is not listed below fails the
   rehearsal, so the list in the docs cannot go stale.
3. Creates the stack through CloudFormation (moto) and reads back what it made: each
   function's name, role and environment variables, the state machines' definitions
   after substitution, the stack's resources and outputs.
4. Creates an operator identity, assumes every function's role (each function later
   runs with its own role's credentials), then turns on the emulator's IAM
   enforcement (`/moto-api/reset-auth`): from then on, every call is checked against
   the caller's policies.

Writes one JSON document to --out. Exit status 0 on success, 1 on a rehearsal
failure (its reason on stderr), 2 on usage errors.
"""

import argparse
import ast
import copy
import hashlib
import io
import json
import logging
import os
import sys
import urllib.request
import warnings
import zipfile

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import boto3  # noqa: E402
from moto.cloudformation.parsing import resource_class_from_type  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sam_translate import NoManagedPolicies, package  # noqa: E402
from samcli.yamlhelper import yaml_parse  # noqa: E402

# Resource types moto's CloudFormation does not create, and what the harness does
# about each. Keep docs/deploy-rehearsal.md in step (a test compares them).
EMULATOR_GAPS = {
    "AWS::SecretsManager::Secret": "created by the harness through the Secrets Manager API from the template's own properties; Ref resolves to its ARN, as on AWS",
    "AWS::ApiGatewayV2::Api": "not created; the harness gives it an id, which Ref and ${Api} resolve to, so the boundary and the operator policy name an API as on AWS; the local gateway verifies JWTs as the JWT authorizer does and calls the functions",
    "AWS::ApiGatewayV2::Stage": "not created (see AWS::ApiGatewayV2::Api)",
    "AWS::CloudWatch::Alarm": "not created; a test checks every alarm's namespace, metric and dimensions against what the code emits",
    "AWS::SNS::Subscription": "not created (optional email subscriptions; nothing to deliver to locally)",
    "AWS::SQS::QueuePolicy": "not created (EventBridge's permission to write to the dead-letter queue)",
    "AWS::Scheduler::Schedule": "not created; the tests deliver the schedules' events themselves",
    "AWS::Chatbot::SlackChannelConfiguration": "not created (optional; only when its parameters are set)",
    "AWS::Chatbot::MicrosoftTeamsChannelConfiguration": "not created (optional; only when its parameters are set)",
    "AWS::KMS::Key (asymmetric)": "moto's CloudFormation creates every KMS key as SYMMETRIC_DEFAULT; the harness creates the key through the KMS API with the template's KeySpec, KeyUsage and key policy, and Ref and GetAtt Arn resolve to it",
    "AWS::S3::Bucket (Object Lock)": "moto's CloudFormation ignores ObjectLockEnabled and ObjectLockConfiguration; the harness creates the bucket through the S3 API with Object Lock and the template's default retention, and Ref and GetAtt Arn resolve to it",
    "AWS::Events::EventBusPolicy": "not created: moto's EventBridge evaluates no bus policy; tests/template.rs checks that the bus refuses lapse.hr events from anyone but the webhook's role, and the revocation workflow refuses an event the webhook did not claim (tests/hr_revocation.rs)",
    "AWS::Logs::MetricFilter": "not created: the HR webhook's refusal and throttling counts come from the API's access log, which only API Gateway writes; tests/template.rs checks the filters and their alarms",
    "AWS::S3::BucketPolicy": "not created: moto evaluates a bucket policy without its conditions, so the anchor bucket's Deny of writes without If-None-Match would refuse every write; tests/template.rs checks the policy statically",
    "iam:ListServiceSpecificCredentials": "moto does not implement it; the test harness declares the gap to the functions (LAPSE_EMULATOR_GAPS), which then record the listing as not offered instead of unreadable",
    "iam:UserPermissionsBoundary": "moto keeps no user permissions boundary (GetUser never reports one); the test harness declares the gap, and the grant step then grants without checking the grantee's boundary and says so in grant.activated",
}

OPERATOR = "lapse-rehearsal-operator"


class RehearsalError(Exception):
    pass


def placeholder_zip(binary: str) -> bytes:
    """moto stores function code but never runs it; the handlers run in the test
    process. A placeholder keeps the rehearsal from compiling release binaries."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", f"#!/bin/sh\necho 'rehearsal placeholder for {binary}' >&2\nexit 1\n")
    return buf.getvalue()


def replace_refs(node, logical_id: str, value: str):
    """Every {"Ref": logical_id} (and ${logical_id} in Fn::Sub) becomes `value`."""
    if isinstance(node, dict):
        if node == {"Ref": logical_id}:
            return value
        if "Fn::Sub" in node and isinstance(node["Fn::Sub"], str):
            return {"Fn::Sub": node["Fn::Sub"].replace("${" + logical_id + "}", value)}
        return {k: replace_refs(v, logical_id, value) for k, v in node.items()}
    if isinstance(node, list):
        return [replace_refs(v, logical_id, value) for v in node]
    return node


def replace_getatt_arn(node, logical_id: str, value: str):
    """Every {"Fn::GetAtt": [logical_id, "Arn"]} (and ${logical_id.Arn} in Fn::Sub)
    becomes `value`."""
    if isinstance(node, dict):
        if node.get("Fn::GetAtt") in ([logical_id, "Arn"], f"{logical_id}.Arn"):
            return value
        if "Fn::Sub" in node and isinstance(node["Fn::Sub"], str):
            return {"Fn::Sub": node["Fn::Sub"].replace("${" + logical_id + ".Arn}", value)}
        return {k: replace_getatt_arn(v, logical_id, value) for k, v in node.items()}
    if isinstance(node, list):
        return [replace_getatt_arn(v, logical_id, value) for v in node]
    return node


def resolve_pseudo(node, stack: str):
    """Fn::Sub strings with only pseudo parameters, resolved as CloudFormation would."""
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            return (
                node["Fn::Sub"]
                .replace("${AWS::Partition}", "aws")
                .replace("${AWS::AccountId}", "123456789012")
                .replace("${AWS::Region}", "us-east-1")
                .replace("${AWS::StackName}", stack)
            )
        return {k: resolve_pseudo(v, stack) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_pseudo(v, stack) for v in node]
    return node


def emulator_copy(translated: dict, definitions: dict, stack: str, secrets, kms, s3, parameters: dict) -> tuple:
    """The template as moto can create it, the gaps met, and the event buses' names
    (moto reports no physical id for a bus)."""
    template = copy.deepcopy(translated)
    resources = template["Resources"]
    gaps = {}
    buses = {}
    created = {}
    for logical_id, resource in list(resources.items()):
        props = resource.get("Properties", {})
        if resource["Type"] != "AWS::S3::Bucket" or not props.get("ObjectLockEnabled"):
            continue
        name = f"{stack}-{logical_id}".lower()
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        rule = props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
        days = rule.get("Days")
        if isinstance(days, dict):  # Ref to a parameter: its value, or its default
            parameter = days["Ref"]
            days = int(parameters.get(parameter, template["Parameters"][parameter].get("Default")))
        s3.put_object_lock_configuration(
            Bucket=name,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": rule["Mode"], "Days": days}},
            },
        )
        gaps.setdefault("AWS::S3::Bucket (Object Lock)", []).append(logical_id)
        created[logical_id] = {"type": "AWS::S3::Bucket", "physical_id": name}
        del resources[logical_id]
        template = replace_getatt_arn(template, logical_id, f"arn:aws:s3:::{name}")
        template = replace_refs(template, logical_id, name)
        resources = template["Resources"]
    for logical_id, resource in list(resources.items()):
        props = resource.get("Properties", {})
        if resource["Type"] != "AWS::KMS::Key" or props.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT":
            continue
        key = kms.create_key(
            KeySpec=props["KeySpec"],
            KeyUsage=props.get("KeyUsage", "ENCRYPT_DECRYPT"),
            Description=props.get("Description", ""),
            Policy=json.dumps(resolve_pseudo(props["KeyPolicy"], stack)),
        )["KeyMetadata"]
        gaps.setdefault("AWS::KMS::Key (asymmetric)", []).append(logical_id)
        created[logical_id] = {"type": "AWS::KMS::Key", "physical_id": key["Arn"]}
        del resources[logical_id]
        template = replace_getatt_arn(template, logical_id, key["Arn"])
        template = replace_refs(template, logical_id, key["KeyId"])
        resources = template["Resources"]
    for logical_id, resource in list(resources.items()):
        kind = resource["Type"]
        if resource_class_from_type(kind) is not None:
            continue
        if kind not in EMULATOR_GAPS:
            raise RehearsalError(
                f"{logical_id}: moto's CloudFormation does not create {kind}, and the rehearsal "
                "does not know this gap; add it to EMULATOR_GAPS and docs/deploy-rehearsal.md"
            )
        gaps.setdefault(kind, []).append(logical_id)
        if kind == "AWS::ApiGatewayV2::Api":
            # An id shaped as API Gateway's (ten lowercase alphanumerics), fixed per
            # stack, so what names the API (the boundary, the operator policy, the
            # functions' invoke permissions) names one the coverage check can see.
            api_id = hashlib.sha256(f"{stack}/{logical_id}".encode()).hexdigest()[:10]
            created[logical_id] = {"type": kind, "physical_id": api_id}
            del resources[logical_id]
            template = replace_refs(template, logical_id, api_id)
            resources = template["Resources"]
        if kind == "AWS::SecretsManager::Secret":
            props = resource.get("Properties", {})
            name = f"{stack}-{logical_id}"
            if "SecretString" in props:
                value = props["SecretString"]
                if not isinstance(value, str):
                    raise RehearsalError(f"{logical_id}: SecretString must be a literal")
                arn = secrets.create_secret(Name=name, SecretString=value)["ARN"]
            else:
                gen = props.get("GenerateSecretString", {})
                template_text = gen.get("SecretStringTemplate", "{}")
                if isinstance(template_text, dict) and "Fn::Sub" in template_text:
                    template_text = template_text["Fn::Sub"].replace("${AWS::StackName}", stack)
                value = json.loads(template_text)
                exclude = gen.get("ExcludeCharacters", "")
                random = secrets.get_random_password(
                    PasswordLength=gen.get("PasswordLength", 32),
                    ExcludeCharacters=exclude,
                    ExcludeUppercase=gen.get("ExcludeUppercase", False),
                    ExcludePunctuation=gen.get("ExcludePunctuation", False),
                    IncludeSpace=gen.get("IncludeSpace", False),
                )["RandomPassword"]
                value[gen["GenerateStringKey"]] = random
                arn = secrets.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]
            del resources[logical_id]
            template = replace_refs(template, logical_id, arn)
            resources = template["Resources"]
    # moto invokes a stream's Lambda consumer itself, in Docker, inside the write
    # that fed the stream: with no Docker engine that write never returns. The
    # mapping is left out; tests deliver the stream's records to the TTL backstop
    # with the shapes in events/ttl-backstop/.
    for logical_id, resource in list(resources.items()):
        if resource["Type"] == "AWS::Lambda::EventSourceMapping":
            del resources[logical_id]
            gaps.setdefault(resource["Type"], []).append(logical_id)
    # moto answers Ref on an event bus with an object instead of the bus's name (what
    # AWS returns); put the name in its place.
    for logical_id, resource in list(resources.items()):
        if resource["Type"] == "AWS::Events::EventBus":
            name = resource["Properties"]["Name"]
            if isinstance(name, dict):
                name = name["Fn::Sub"].replace("${AWS::StackName}", stack)
            template = replace_refs(template, logical_id, name)
            resources = template["Resources"]
            buses[logical_id] = name
    # State machines: moto reads only DefinitionString. What CloudFormation does with
    # DefinitionS3Location + DefinitionSubstitutions is an Fn::Sub over the file.
    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        location = props.pop("DefinitionS3Location", None)
        if resource["Type"] == "AWS::StepFunctions::StateMachine" and location:
            text = definitions[location["Key"]]
            subs = props.pop("DefinitionSubstitutions", {})
            props["DefinitionString"] = {"Fn::Sub": [text, subs]}
    # EventBridge: moto delivers to SQS but fails the whole PutEvents on a Step
    # Functions target. Each rule's state-machine target is replaced by a router
    # queue; the harness starts the execution from it with the event as input, as
    # the rule's target would (the rule, its pattern and its bus are the template's).
    machines = {lid for lid, r in resources.items() if r["Type"] == "AWS::StepFunctions::StateMachine"}
    resources["RehearsalRouterQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Events::Rule":
            continue
        # CloudFormation takes an EventPattern as an object or as JSON text; moto
        # only as an object.
        pattern = resource["Properties"].get("EventPattern")
        if isinstance(pattern, str):
            resource["Properties"]["EventPattern"] = json.loads(pattern)
        targets = []
        for target in resource["Properties"].get("Targets", []):
            if isinstance(target.get("Arn"), dict) and target["Arn"].get("Ref") in machines:
                target = {"Id": target["Id"], "Arn": {"Fn::GetAtt": ["RehearsalRouterQueue", "Arn"]}}
                gaps.setdefault("EventBridge target: Step Functions", []).append(logical_id)
            targets.append(target)
        resource["Properties"]["Targets"] = targets
    return template, gaps, buses, created


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--template", default=os.path.join(os.path.dirname(__file__), "..", "infra", "template.yaml"))
    parser.add_argument("--param", action="append", default=[])
    parser.add_argument("--no-enforce", action="store_true", help="leave IAM enforcement off (debugging)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)

    session = boto3.session.Session(
        aws_access_key_id="rehearsal", aws_secret_access_key="rehearsal", region_name="us-east-1"
    )

    def client(name):
        return session.client(name, endpoint_url=args.endpoint)

    try:
        with open(args.template, encoding="utf-8") as f:
            template = yaml_parse(f.read())
        bucket = f"{args.stack}-artifacts"
        artifacts = package(template, os.path.dirname(os.path.abspath(args.template)), bucket)
        params = dict(p.split("=", 1) for p in args.param)
        translated = transform(template, params, NoManagedPolicies())

        s3 = client("s3")
        s3.create_bucket(Bucket=bucket)
        definitions = {}
        for artifact in artifacts:
            if artifact["kind"] == "function":
                body = placeholder_zip(artifact["binary"])
            else:
                with open(artifact["path"], encoding="utf-8") as f:
                    definitions[artifact["key"]] = f.read()
                body = definitions[artifact["key"]].encode()
            s3.put_object(Bucket=bucket, Key=artifact["key"], Body=body)

        emulated, gaps, buses, created = emulator_copy(
            translated, definitions, args.stack, client("secretsmanager"), client("kms"), s3, params
        )
        cfn = client("cloudformation")
        cfn.create_stack(
            StackName=args.stack,
            TemplateBody=json.dumps(emulated),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        stack = cfn.describe_stacks(StackName=args.stack)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise RehearsalError(f"stack {args.stack} is {stack['StackStatus']}: {stack.get('StackStatusReason')}")
        resources = {
            r["LogicalResourceId"]: {"type": r["ResourceType"], "physical_id": r.get("PhysicalResourceId")}
            for r in cfn.describe_stack_resources(StackName=args.stack)["StackResources"]
            if "LogicalResourceId" in r  # moto lists the types it skipped without one
        }
        # Created by the harness in moto's place (listed, so every check sees them).
        resources.update(created)
        for logical_id, name in buses.items():  # moto reports no physical id for a bus
            if resources.get(logical_id, {}).get("physical_id") is None:
                resources[logical_id] = {"type": "AWS::Events::EventBus", "physical_id": name}
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

        lam = client("lambda")
        sts = client("sts")
        iam = client("iam")
        functions = {}
        for logical_id, resource in resources.items():
            if resource["type"] != "AWS::Lambda::Function":
                continue
            binary = next(a["binary"] for a in artifacts if a["logical_id"] == logical_id)
            conf = lam.get_function_configuration(FunctionName=resource["physical_id"])
            functions[binary] = {
                "logical_id": logical_id,
                "name": conf["FunctionName"],
                "arn": conf["FunctionArn"],
                "role_arn": conf["Role"],
                "environment": conf.get("Environment", {}).get("Variables", {}),
            }

        sfn = client("stepfunctions")
        state_machines = {}
        for logical_id, resource in resources.items():
            if resource["type"] == "AWS::StepFunctions::StateMachine":
                described = sfn.describe_state_machine(stateMachineArn=resource["physical_id"])
                state_machines[logical_id] = {"arn": described["stateMachineArn"], "definition": described["definition"]}

        # moto's evaluator checks actions only: the resource it matches is "*" for
        # most services (a statement scoped to an ARN never matches) and any
        # Condition counts as a deny. So each function's role is re-put as its action
        # projection (the same Allow actions on "*"): a call whose action the template
        # does not grant is refused, as on AWS. Resources and conditions are checked
        # statically over the translated template (tests/template.rs). This also
        # works around moto storing CloudFormation's inline policies in a shape its
        # own evaluator cannot read.
        roles = set()
        for function in functions.values():
            role = function["role_arn"].rsplit("/", 1)[-1]
            roles.add(role)
            for policy_name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
                document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
                if isinstance(document, str):
                    try:
                        document = json.loads(document)
                    except ValueError:  # moto keeps CloudFormation's dict as its repr
                        document = ast.literal_eval(document)
                statements = document.get("Statement", [])
                if isinstance(statements, dict):
                    statements = [statements]
                projection = [
                    {"Effect": "Allow", "Action": st["Action"], "Resource": "*"}
                    for st in statements
                    if st.get("Effect") == "Allow" and "Action" in st
                ]
                iam.put_role_policy(
                    RoleName=role,
                    PolicyName=policy_name,
                    PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": projection}),
                )

        # The operator: what a person with their own AWS credentials does (create
        # IAM users, set the webhook credentials, read IAM back in assertions).
        iam.create_user(UserName=OPERATOR)
        iam.put_user_policy(
            UserName=OPERATOR,
            PolicyName="operator",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            ),
        )
        key = iam.create_access_key(UserName=OPERATOR)["AccessKey"]
        for binary, function in functions.items():
            creds = sts.assume_role(RoleArn=function["role_arn"], RoleSessionName=binary)["Credentials"]
            function["credentials"] = {
                "access_key_id": creds["AccessKeyId"],
                "secret_access_key": creds["SecretAccessKey"],
                "session_token": creds["SessionToken"],
            }
        router = client("sqs").get_queue_url(QueueName=resources["RehearsalRouterQueue"]["physical_id"].rsplit("/", 1)[-1])
        document = {
            "stack": args.stack,
            "outputs": outputs,
            "resources": resources,
            "functions": functions,
            "state_machines": state_machines,
            "router_queue_url": router["QueueUrl"],
            "emulator_gaps": gaps,
            "translated_template": translated,
            "operator": {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]},
        }
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=1, default=str)
        if not args.no_enforce:
            request = urllib.request.Request(
                f"{args.endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status != 200:
                    raise RehearsalError(f"could not turn on IAM enforcement: HTTP {response.status}")
    except RehearsalError as err:
        print(f"rehearsal: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
