//! Vendor (third-party) access: an employee sponsors a vendor for a resource, a
//! duration and a project. The request is the sponsor's; the grant goes to a
//! temporary IAM user made for this engagement alone:
//! - named `vendor-<id>-<8 hex of the request>`, tagged with the sponsor, the
//!   project, the vendor's email and the request, under the managed path and the
//!   managed users' boundary;
//! - with a base policy ([`base_policy`]) that denies everything but MFA
//!   enrolment until MFA is present, and everything from outside the catalog's
//!   `vendor_access.source_ips`;
//! - whose initial console password goes into a Secrets Manager secret
//!   ([`secret_name`]) that only the sponsor may read, never into a log or an answer.
//!
//! At the grant's end the user is deactivated (console login, keys, policies,
//! groups) and verified; after the policy's `vendor_retention` it is deleted,
//! unless a legal hold keeps it.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::request::{RequestError, RequestId};
use crate::identity::PrincipalId;

/// The name of the base policy every vendor user carries.
pub const BASE_POLICY: &str = "lapse-vendor-base";

/// Who the sponsor says the vendor is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorAsk {
    /// Lower-case letters, digits and `-`, 1 to 32 characters: part of the user name.
    pub id: String,
    pub email: String,
}

/// The vendor of a vendor-access request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vendor {
    user: PrincipalId,
    email: String,
    project: String,
}

fn invalid(reason: impl Into<String>) -> RequestError {
    RequestError::InvalidVendor(reason.into())
}

impl Vendor {
    pub(crate) fn new(
        ask: &VendorAsk,
        project: &str,
        request: &RequestId,
    ) -> Result<Self, RequestError> {
        let id = ask.id.trim();
        if id.is_empty()
            || id.len() > 32
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(invalid(
                "the vendor id is 1 to 32 lower-case letters, digits or `-`",
            ));
        }
        let email = ask.email.trim();
        let well_formed = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
            })
            && !email.chars().any(char::is_whitespace);
        if !well_formed {
            return Err(invalid(format!("`{email}` is not an email address")));
        }
        let engagement: String = request
            .as_str()
            .trim_start_matches("req-")
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(8)
            .collect();
        let user = PrincipalId::new(format!("vendor-{id}-{engagement}"))
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            user,
            email: email.to_owned(),
            project: project.to_owned(),
        })
    }

    /// The temporary IAM user of this engagement.
    pub fn user(&self) -> &PrincipalId {
        &self.user
    }
    pub fn email(&self) -> &str {
        &self.email
    }
    pub fn project(&self) -> &str {
        &self.project
    }
}

/// The secret holding the vendor user's initial console password.
pub fn secret_name(user: &PrincipalId) -> String {
    format!("lapse/vendor/{user}")
}

/// The vendor user's base policy: nothing but managing one's own MFA device until
/// MFA is present, and nothing at all from outside `source_ips`.
pub fn base_policy(source_ips: &[String]) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "NothingButMfaEnrolmentWithoutMfa",
                "Effect": "Deny",
                "NotAction": [
                    "iam:CreateVirtualMFADevice",
                    "iam:EnableMFADevice",
                    "iam:ListMFADevices",
                    "iam:ListVirtualMFADevices",
                    "iam:ResyncMFADevice",
                    "iam:GetUser",
                    "iam:ChangePassword",
                    "iam:GetAccountPasswordPolicy",
                    "sts:GetSessionToken"
                ],
                "Resource": "*",
                "Condition": { "BoolIfExists": { "aws:MultiFactorAuthPresent": "false" } }
            },
            {
                "Sid": "NothingFromOutsideTheVendorNetworks",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {
                    "NotIpAddress": { "aws:SourceIp": source_ips },
                    "Bool": { "aws:ViaAWSService": "false" }
                }
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(id: &str, email: &str) -> VendorAsk {
        VendorAsk {
            id: id.into(),
            email: email.into(),
        }
    }

    #[test]
    fn the_user_is_per_engagement_and_inputs_are_checked() {
        let request = RequestId::parse("req-6f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f").unwrap();
        let vendor = Vendor::new(&ask("acme-db", "ops@acme.example"), "PRJ-7", &request).unwrap();
        assert_eq!(vendor.user().as_str(), "vendor-acme-db-6f1c2a4e");
        assert_eq!(
            secret_name(vendor.user()),
            "lapse/vendor/vendor-acme-db-6f1c2a4e"
        );
        for (id, email) in [
            ("Acme", "ops@acme.example"),
            ("", "ops@acme.example"),
            (&"a".repeat(33) as &str, "ops@acme.example"),
            ("acme", "ops"),
            ("acme", "ops@localhost"),
            ("acme", "o ps@acme.example"),
        ] {
            assert!(
                matches!(
                    Vendor::new(&ask(id, email), "PRJ-7", &request),
                    Err(RequestError::InvalidVendor(_))
                ),
                "{id} {email}"
            );
        }
    }

    #[test]
    fn the_base_policy_denies_without_mfa_and_from_elsewhere() {
        let policy = base_policy(&["203.0.113.0/24".into()]);
        let statements = policy["Statement"].as_array().unwrap();
        assert_eq!(
            statements[0]["Condition"]["BoolIfExists"]["aws:MultiFactorAuthPresent"],
            "false"
        );
        assert!(
            statements[0]["NotAction"]
                .as_array()
                .unwrap()
                .contains(&json!("iam:EnableMFADevice"))
        );
        assert_eq!(
            statements[1]["Condition"]["NotIpAddress"]["aws:SourceIp"],
            json!(["203.0.113.0/24"])
        );
        assert!(statements.iter().all(|s| s["Effect"] == "Deny"));
    }
}
