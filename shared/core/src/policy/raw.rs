//! The catalog file's raw, span-carrying shape, as parsed: every value keeps its
//! line and column for the problems [`super::validate`] reports.

use serde_saphyr::Spanned;

use super::*;

/// [`Catalog::compile`]'s output: the file as read, and the hash of its text.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Compiled<C> {
    pub(super) hash: PolicyHash,
    pub(super) catalog: C,
}

// ---- Raw, span-carrying shape of the file ------------------------------------------

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCatalog {
    pub(super) version: Spanned<u32>,
    pub(super) tunables: RawTunables,
    pub(super) risk: RawRisk,
    pub(super) routing: RawRouting,
    #[serde(default)]
    pub(super) identity_provider: Option<RawIdentityProvider>,
    pub(super) approver_groups: Spanned<Vec<RawGroup>>,
    #[serde(default)]
    pub(super) roles: Vec<RawRole>,
    pub(super) resources: Spanned<Vec<RawResource>>,
    #[serde(default)]
    pub(super) inactivity_exemptions: Vec<RawExemption>,
    #[serde(default)]
    pub(super) vendor_access: Option<RawVendorAccess>,
}

/// The identity provider whose group ids `idp_groups` holds: `okta`, `entra`, or
/// `pattern` with a `pattern` the whole id must match.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentityProvider {
    pub(super) group_ids: Spanned<String>,
    #[serde(default)]
    pub(super) pattern: Option<Spanned<String>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVendorAccess {
    pub(super) source_ips: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExemption {
    pub(super) user: Spanned<String>,
    pub(super) reason: Spanned<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRole {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) groups: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) managed_policies: Vec<Spanned<String>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTunables {
    pub(super) default_duration: Spanned<String>,
    pub(super) max_duration: Spanned<String>,
    pub(super) auto_approve_max_duration: Spanned<String>,
    pub(super) pending_timeout: Spanned<String>,
    pub(super) break_glass_cap: Spanned<String>,
    pub(super) break_glass_justification_window: Spanned<String>,
    pub(super) vendor_retention: Spanned<String>,
    pub(super) inactivity_threshold: Spanned<String>,
    pub(super) role_change_transition: Spanned<String>,
    pub(super) archive_retention: Spanned<String>,
    pub(super) contract_grace: Spanned<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRisk {
    pub(super) thresholds: RawThresholds,
    pub(super) business_hours: RawBusinessHours,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawThresholds {
    pub(super) medium: Spanned<u8>,
    pub(super) high: Spanned<u8>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBusinessHours {
    pub(super) start_hour_utc: Spanned<u8>,
    pub(super) end_hour_utc: Spanned<u8>,
    pub(super) weekdays_only: bool,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouting {
    pub(super) dual_approval_groups: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    pub(super) name: Spanned<String>,
    pub(super) description: String,
    pub(super) idp_groups: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResource {
    pub(super) id: Spanned<String>,
    pub(super) description: String,
    pub(super) owner_group: Spanned<String>,
    pub(super) environment: Environment,
    pub(super) sensitivity: Sensitivity,
    #[serde(default)]
    pub(super) privileged: bool,
    pub(super) max_duration: Option<Spanned<String>>,
    pub(super) grant: Spanned<RawGrant>,
    pub(super) dual_approval_groups: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) allows_escalation: Option<Spanned<RawEscalation>>,
    pub(super) break_glass: Option<Spanned<RawBreakGlass>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBreakGlass {
    pub(super) eligible_groups: Spanned<Vec<Spanned<String>>>,
    pub(super) high_risk_reason: Option<Spanned<String>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEscalation {
    pub(super) reason: Spanned<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum RawGrant {
    InlinePolicy(Vec<Spanned<RawStatement>>),
    Group(Spanned<String>),
    Credential(RawCredential),
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredential {
    pub(super) secret_arn: Spanned<String>,
    /// Optional here so that its absence is reported at the resource, in words.
    #[serde(default)]
    pub(super) rotation_function: Option<Spanned<String>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatement {
    pub(super) effect: Effect,
    pub(super) actions: Vec<Spanned<String>>,
    pub(super) resources: Vec<Spanned<String>>,
}
