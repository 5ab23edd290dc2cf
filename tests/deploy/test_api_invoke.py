"""The dashboard's invoke path as AWS evaluates it: the API Gateway that ``zappa deploy`` builds may call the function.

Zappa's REST API integration (``AWS_PROXY``) carries ``Credentials``: the role
API Gateway assumes to invoke the function. moto keeps neither the
integration's credentials nor evaluates them, so the template is built with
Zappa's own code for the repository's stage, as ``zappa deploy`` builds it,
and its principal is checked against the IAM documents ``provision`` wrote.
"""

from __future__ import annotations

import json

import boto3
from zappa.cli import ZappaCLI

from tooling.deploy import iam
from tooling.deploy.documents import LAMBDA_TRUSTED, lambda_policy, trust


def api_template(settings_file, stage: str, lambda_arn: str) -> dict:
    """The CloudFormation template of the stage's API, from Zappa's CLI exactly as its ``deploy`` makes it."""
    cli = ZappaCLI()
    cli.api_stage = stage
    cli.load_settings(str(settings_file), session=boto3.Session(region_name="eu-west-1"))
    cli.lambda_arn = lambda_arn
    assert cli.use_apigateway and cli.apigateway_version == "v1", "the repository's stage deploys a REST API"
    template = cli.zappa.create_stack_template(
        lambda_arn=cli.lambda_arn,
        lambda_name=cli.lambda_name,
        api_key_required=cli.api_key_required,
        iam_authorization=cli.iam_authorization,
        authorizer=cli.authorizer,
        cors_options=cli.cors,
        description=cli.apigateway_description,
        endpoint_configuration=cli.endpoint_configuration,
        apigateway_version=cli.apigateway_version,
        stage_name=cli.api_stage,
        lambda_qualifier=cli.apigateway_lambda_qualifier,
        websocket=cli.use_websocket,
    )
    return json.loads(template.to_json())


def integrations(template: dict) -> list[dict]:
    return [
        resource["Properties"]["Integration"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::ApiGateway::Method" and resource["Properties"].get("Integration")
    ]


def test_the_role_zappas_api_uses_may_invoke_the_function(deployment):
    deployment.provision()
    names = deployment.names
    template = api_template(deployment.settings_file, "dev", names.function_arn)
    found = integrations(template)
    assert found and {i["Type"] for i in found} == {"AWS_PROXY"}
    for integration in found:
        assert names.function_arn in json.dumps(integration["Uri"]), "the integration calls the stage's function"
        documents = iam.role_documents(deployment.aws, integration["Credentials"])
        assert documents is not None, f"API Gateway would assume {integration['Credentials']}, which does not exist"
        trust_policy, policies = documents
        assert iam.trusts(trust_policy, "apigateway.amazonaws.com"), "API Gateway may not assume the role: 500"
        assert iam.allows(policies, "lambda:InvokeFunction", names.function_arn), "the role may not invoke: 500"
    assert not iam.allows(policies, "lambda:InvokeFunction", names.arn("lambda", "function:someone-else"))


def test_the_doctor_flags_a_role_api_gateway_cannot_use(deployed):
    names = deployed.names
    deployed.aws.iam.update_assume_role_policy(
        RoleName=names.lambda_role, PolicyDocument=json.dumps(trust("lambda.amazonaws.com"))
    )
    check = deployed.doctor()["API may invoke"]
    assert check.status == "FAIL" and "does not trust apigateway.amazonaws.com" in check.detail
    assert check.fix.startswith("python -m app provision dev")
    deployed.provision()
    assert deployed.doctor()["API may invoke"].passed, "provisioning again repairs the trust"


def test_the_evaluator_reads_iam_as_aws_does(deployment):
    """Deny wins; a conditional Allow is not counted; actions compare case-insensitively, resources exactly."""
    deployment.provision()
    names = deployment.names
    policy = lambda_policy(names)
    assert iam.allows([policy], "Lambda:invokefunction", names.function_arn)
    assert iam.allows([policy], "lambda:InvokeFunction", f"{names.function_arn}:live")
    assert not iam.allows([policy], "lambda:InvokeFunction", names.function_arn.upper())
    deny = {"Statement": [{"Effect": "Deny", "Action": "lambda:*", "Resource": "*"}]}
    assert not iam.allows([policy, deny], "lambda:InvokeFunction", names.function_arn)
    conditional = {
        "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}}
        ]
    }
    assert not iam.allows([conditional], "lambda:InvokeFunction", names.function_arn)
    assert iam.trusts(trust(*LAMBDA_TRUSTED), "apigateway.amazonaws.com")
    assert not iam.trusts(trust("lambda.amazonaws.com"), "apigateway.amazonaws.com")
