//! The access-request lifecycle as a typed state machine.
//!
//! ```text
//! Pending ──approve(all slots)──▶ Approved ──activate──▶ Active ──revoke──▶ Revoked ──verify──▶ Verified
//!    │ ╲──deny──▶ Denied              │
//!    │  ╲─timeout─▶ Expired           └──cancel──▶ Cancelled
//!    └──cancel──▶ Cancelled
//! ```
//!
//! Invariants, enforced here and property-tested:
//! - the requester never approves their own request;
//! - each approval slot (one group of the route) is filled by a distinct person who is a
//!   member of that group; one person fills at most one slot;
//! - any eligible deny ends the request;
//! - no decision is accepted at or after the pending deadline;
//! - durations above the resource's cap are rejected when the request is made;
//! - repeating a transition is a no-op that says so, never a second effect.
//!
//! Mutating methods change the value in memory only; a store persists it with an
//! optimistic version check, so racing writers get exactly one winner.

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::access::breakglass::{BreakGlass, Finding, Nudge, ReviewOutcome};
use crate::access::ledger::Artifact;
use crate::access::risk::{self, RequesterContext, RiskAssessment, Route, RouteDecision};
use crate::access::vendor::{Vendor, VendorAsk};
use crate::duration::Span;
use crate::identity::{EmploymentType, Principal, PrincipalId};
use crate::policy::{Catalog, PolicyHash};

/// Longest justification accepted, in characters.
pub const MAX_JUSTIFICATION_CHARS: usize = 2000;

/// Identifier of an access request, `req-<uuid>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request id {0:?}: expected `req-` followed by a UUID")]
pub struct InvalidRequestId(pub String);

impl RequestId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(format!("req-{}", uuid::Uuid::new_v4()))
    }

    /// Parses `req-<uuid>`.
    pub fn parse(text: &str) -> Result<Self, InvalidRequestId> {
        match text.strip_prefix("req-").map(uuid::Uuid::parse_str) {
            Some(Ok(uuid)) => Ok(Self(format!("req-{uuid}"))),
            _ => Err(InvalidRequestId(text.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RequestId {
    type Error = InvalidRequestId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<RequestId> for String {
    fn from(value: RequestId) -> Self {
        value.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a request is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Denied,
    Expired,
    Cancelled,
    Active,
    Revoked,
    Verified,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
            Status::Active => "active",
            Status::Revoked => "revoked",
            Status::Verified => "verified",
        }
    }

    /// Every status reachable from this one in one step.
    pub fn successors(self) -> &'static [Status] {
        use Status::*;
        match self {
            Pending => &[Approved, Denied, Expired, Cancelled],
            Approved => &[Active, Cancelled],
            Active => &[Revoked],
            Revoked => &[Verified],
            Denied | Expired | Cancelled | Verified => &[],
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an active grant was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeCause {
    /// The grant reached its end.
    Expiry,
    /// Someone revoked it early.
    EarlyRevoke,
    /// The holder's rights were revoked (termination, violation, ...).
    RightsRevocation,
}

impl RevokeCause {
    /// The cause in words.
    pub fn label(self) -> &'static str {
        match self {
            RevokeCause::Expiry => "the grant reached its end",
            RevokeCause::EarlyRevoke => "revoked early",
            RevokeCause::RightsRevocation => "the holder's rights were revoked",
        }
    }
}

/// An approval that filled one slot of the route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub approver: PrincipalId,
    /// The slot's group (`auto` for auto-approval).
    pub group: String,
    pub at: DateTime<Utc>,
    pub comment: String,
}

/// The decision that ended a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    pub by: PrincipalId,
    pub at: DateTime<Utc>,
    pub comment: String,
}

/// Who withdrew a request before its grant, and why. Kept on the request, so the
/// audit event of a withdrawal recorded again on a retry names the same actor and
/// reason whoever retries it (the requester's cancel or a revocation's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    pub by: String,
    pub reason: String,
}

/// When a grant is live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantWindow {
    pub starts_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What a requester asks for (identity comes separately, from authentication).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRequest {
    pub resource: String,
    /// `None` takes the catalog's default duration (capped by the resource's maximum).
    pub duration: Option<Span>,
    pub justification: String,
    #[serde(default)]
    pub ticket: Option<String>,
}

/// An approver's choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Deny,
}

/// What a decision did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DecisionOutcome {
    /// One slot filled; these groups still need an approver.
    Recorded { remaining: Vec<String> },
    /// The last slot was filled: start the grant workflow (returned exactly once).
    Approved,
    /// The request is denied.
    Denied,
    /// This person already made this decision; nothing changed.
    AlreadyRecorded,
}

/// A rule the request refused to break.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("unknown resource `{resource}`")]
    UnknownResource { resource: String },
    #[error("requested {requested} exceeds the {max} maximum for `{resource}`")]
    DurationTooLong {
        resource: String,
        requested: Span,
        max: Span,
    },
    #[error("a justification is required")]
    JustificationMissing,
    #[error("justification is longer than {MAX_JUSTIFICATION_CHARS} characters")]
    JustificationTooLong,
    #[error("ticket reference {0:?} is invalid: use up to 64 letters, digits or `-_#/.:`")]
    InvalidTicket(String),
    #[error("{0} cannot decide on their own request")]
    SelfApproval(PrincipalId),
    #[error("{approver} is not in any group this request still needs (needs one of: {})", needed.join(", "))]
    NotEligible {
        approver: PrincipalId,
        needed: Vec<String>,
    },
    #[error("request is {status}; decisions are only taken while pending")]
    NotPending { status: Status },
    #[error("the approval window closed at {deadline}")]
    PendingTimedOut { deadline: DateTime<Utc> },
    #[error("only the requester may do this")]
    NotRequester,
    #[error("{0}'s access has been revoked")]
    AccessRevoked(PrincipalId),
    #[error("cannot {action} a request that is {from}")]
    InvalidTransition { from: Status, action: &'static str },
    #[error(
        "break-glass is capped at {cap} by policy; {requested} was asked for (ask for {cap} or less)"
    )]
    BreakGlassOverCap { requested: Span, cap: Span },
    #[error(
        "{extension} is an extension of grant {grant}: revoke the grant itself (a pending extension is cancelled instead)"
    )]
    IsExtension {
        extension: RequestId,
        grant: RequestId,
    },
    #[error(
        "{0} is not a user Lapse manages (no lapse:managed=true tag): Lapse grants nothing it could not revoke"
    )]
    GranteeNotManaged(PrincipalId),
    #[error(
        "{user} does not carry Lapse's permissions boundary (theirs: {actual}): Lapse grants only to people its boundary keeps off Lapse itself"
    )]
    GranteeNotBounded { user: PrincipalId, actual: String },
    #[error(
        "request {request} is not granted: {why}. Lapse grants only what its requester's signed submission asked and signed decisions approved"
    )]
    ApprovalUnsigned { request: RequestId, why: String },
    #[error("an operator never acts on their own access ({0}): another operator must")]
    OperatorOnSelf(PrincipalId),
    #[error(
        "{0} is not an operator of this stack: operators are the IAM users and roles its OperatorArns parameter lists"
    )]
    NotAnOperator(String),
    #[error(
        "{proposed_by} proposed this at {}; a second, different operator must confirm it",
        at.format("%Y-%m-%d %H:%M:%S UTC")
    )]
    SecondOperatorRequired {
        proposed_by: String,
        at: chrono::DateTime<chrono::Utc>,
    },
    #[error("the grant would let its holder assume role {role}, which Lapse may not: {why}")]
    RoleNotManaged { role: String, why: String },
    #[error("break-glass is not offered for `{resource}`; ask for it through a normal request")]
    BreakGlassNotOffered { resource: String },
    #[error("break-glass on `{resource}` is not for you: {why}")]
    BreakGlassNotEligible { resource: String, why: String },
    #[error("this is not a break-glass request")]
    NotBreakGlass,
    #[error("a different justification was given already")]
    AlreadyJustified,
    #[error("{0} reviewed this break-glass use already, with another finding")]
    AlreadyReviewed(PrincipalId),
    #[error("the review of this break-glass use is closed")]
    ReviewClosed,
    #[error("vendor access: {0}")]
    InvalidVendor(String),
}

/// An access request and everything decided about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    id: RequestId,
    requester: PrincipalId,
    resource: String,
    duration: Span,
    justification: String,
    ticket: Option<String>,
    created_at: DateTime<Utc>,
    pending_deadline: DateTime<Utc>,
    context: RequesterContext,
    risk: RiskAssessment,
    routing: RouteDecision,
    approvals: Vec<Approval>,
    denial: Option<Denial>,
    /// Set when the request was withdrawn (cancelled) before its grant.
    #[serde(default)]
    cancellation: Option<Cancellation>,
    status: Status,
    window: Option<GrantWindow>,
    /// What the grant put in IAM, recorded when it started: revocation removes
    /// exactly this, even if the catalog has changed since.
    #[serde(default)]
    artifact: Option<Artifact>,
    revoke_cause: Option<RevokeCause>,
    /// When the grant was revoked: sessions of its roles issued before this are
    /// denied.
    #[serde(default)]
    revoked_at: Option<DateTime<Utc>>,
    /// For an extension: the grant it extends.
    #[serde(default)]
    extends: Option<RequestId>,
    /// For a grant: the extensions merged into its window, in order.
    #[serde(default)]
    extensions: Vec<RequestId>,
    /// For break-glass access: what is still owed afterwards.
    #[serde(default)]
    break_glass: Option<BreakGlass>,
    /// For a credential checkout: the secret (ARN without its suffix), pinned when
    /// the request was made.
    #[serde(default)]
    checkout: Option<String>,
    /// The roles the grant lets its holder assume (exact ARNs), pinned when the
    /// request was made: the grant's end denies its sessions of each.
    #[serde(default)]
    assumable_roles: Vec<String>,
    /// For vendor access: the vendor, whose temporary IAM user holds the grant
    /// (the requester is the sponsor).
    #[serde(default)]
    vendor: Option<Vendor>,
    updated_at: DateTime<Utc>,
    policy_hash: PolicyHash,
    version: u64,
}

fn valid_ticket(ticket: &str) -> bool {
    !ticket.is_empty()
        && ticket.len() <= 64
        && ticket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_#/.:".contains(c))
}

impl AccessRequest {
    /// Validates, scores and routes a new request. Auto-approved requests come back
    /// already `Approved`; everything else is `Pending`.
    pub fn submit(
        input: NewRequest,
        requester: &Principal,
        context: RequesterContext,
        catalog: &Catalog,
        now: DateTime<Utc>,
    ) -> Result<Self, RequestError> {
        let resource =
            catalog
                .resource(&input.resource)
                .ok_or_else(|| RequestError::UnknownResource {
                    resource: input.resource.clone(),
                })?;
        let duration = input.duration.unwrap_or_else(|| {
            catalog
                .tunables()
                .default_duration
                .min(resource.max_duration)
        });
        if duration > resource.max_duration {
            return Err(RequestError::DurationTooLong {
                resource: resource.id.clone(),
                requested: duration,
                max: resource.max_duration,
            });
        }
        let justification = input.justification.trim().to_owned();
        if justification.is_empty() {
            return Err(RequestError::JustificationMissing);
        }
        if justification.chars().count() > MAX_JUSTIFICATION_CHARS {
            return Err(RequestError::JustificationTooLong);
        }
        if let Some(ticket) = &input.ticket
            && !valid_ticket(ticket)
        {
            return Err(RequestError::InvalidTicket(ticket.clone()));
        }
        let risk = risk::assess(catalog, resource, duration, &context, now);
        let routing = risk::route(catalog, resource, duration, requester.employment(), &risk);
        let auto = routing.route == Route::AutoApprove;
        let approvals = if auto {
            vec![Approval {
                approver: PrincipalId::new("lapse-auto").expect("constant id is valid"),
                group: "auto".to_owned(),
                at: now,
                comment: routing.reason.clone(),
            }]
        } else {
            Vec::new()
        };
        Ok(Self {
            id: RequestId::generate(),
            requester: requester.id().clone(),
            resource: resource.id.clone(),
            duration,
            justification,
            ticket: input.ticket,
            created_at: now,
            pending_deadline: now + catalog.tunables().pending_timeout.delta(),
            context,
            risk,
            routing,
            approvals,
            denial: None,
            cancellation: None,
            status: if auto {
                Status::Approved
            } else {
                Status::Pending
            },
            window: None,
            artifact: None,
            revoke_cause: None,
            revoked_at: None,
            extends: None,
            extensions: Vec::new(),
            break_glass: None,
            checkout: resource.checkout.as_ref().map(|c| c.secret_arn.clone()),
            assumable_roles: resource.assumable_roles(),
            vendor: None,
            updated_at: now,
            policy_hash: catalog.hash().clone(),
            version: 0,
        })
    }

    /// Break-glass access: approved at once, for at most the policy's cap (a longer
    /// ask is refused, not shortened), with the reason as its justification, and a
    /// justification and review owed afterwards. Scored like any request, so the
    /// audit trail explains the risk that was taken.
    pub fn break_glass(
        input: NewRequest,
        requester: &Principal,
        context: RequesterContext,
        catalog: &Catalog,
        now: DateTime<Utc>,
    ) -> Result<Self, RequestError> {
        let resource =
            catalog
                .resource(&input.resource)
                .ok_or_else(|| RequestError::UnknownResource {
                    resource: input.resource.clone(),
                })?;
        let policy =
            resource
                .break_glass
                .as_ref()
                .ok_or_else(|| RequestError::BreakGlassNotOffered {
                    resource: resource.id.clone(),
                })?;
        let refuse = |why: String| RequestError::BreakGlassNotEligible {
            resource: resource.id.clone(),
            why,
        };
        if requester.employment() != EmploymentType::Employee {
            return Err(refuse(format!(
                "only employees may break glass, and you are a {}",
                requester.employment().label()
            )));
        }
        if !policy
            .eligible_groups
            .iter()
            .any(|g| requester.is_member(g))
        {
            return Err(refuse(format!(
                "it is for members of {}",
                policy
                    .eligible_groups
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let cap = catalog
            .tunables()
            .break_glass_cap
            .min(resource.max_duration);
        let duration = input.duration.unwrap_or(cap);
        if duration > cap {
            return Err(RequestError::BreakGlassOverCap {
                requested: duration,
                cap,
            });
        }
        let mut request = Self::submit(
            NewRequest {
                duration: Some(duration),
                ..input
            },
            requester,
            context,
            catalog,
            now,
        )?;
        request.routing = RouteDecision {
            route: Route::BreakGlass,
            reason: "break-glass: granted at once, justified and reviewed afterwards".into(),
        };
        request.approvals = vec![Approval {
            approver: PrincipalId::new("lapse-break-glass").expect("constant id is valid"),
            group: "break-glass".to_owned(),
            at: now,
            comment: request.routing.reason.clone(),
        }];
        request.status = Status::Approved;
        request.break_glass = Some(BreakGlass::open(catalog, resource, now));
        Ok(request)
    }

    /// Vendor access: sponsored by `sponsor` for the vendor in `ask`, for a
    /// project (`input.ticket`, required). Always two approvals, from the
    /// resource's dual-approval groups (the sponsor's manager and security in the
    /// shipped catalog), whatever the risk score; never a checked-out credential;
    /// only where the catalog names the networks vendors connect from.
    pub fn vendor(
        input: NewRequest,
        ask: &VendorAsk,
        sponsor: &Principal,
        context: RequesterContext,
        catalog: &Catalog,
        now: DateTime<Utc>,
    ) -> Result<Self, RequestError> {
        if catalog.vendor_source_ips().is_empty() {
            return Err(RequestError::InvalidVendor(
                "the catalog allows none (no vendor_access.source_ips)".into(),
            ));
        }
        let resource =
            catalog
                .resource(&input.resource)
                .ok_or_else(|| RequestError::UnknownResource {
                    resource: input.resource.clone(),
                })?;
        if resource.checkout.is_some() {
            return Err(RequestError::InvalidVendor(
                "credentials are not checked out to vendors".into(),
            ));
        }
        if !resource.assumable_roles().is_empty() {
            // A role session answers to the role's policies, not to the vendor
            // user's base policy: its MFA and network conditions would not hold.
            return Err(RequestError::InvalidVendor(
                "grants that assume roles are not given to vendors: a role session escapes the vendor's MFA and network conditions".into(),
            ));
        }
        let project = input
            .ticket
            .clone()
            .ok_or_else(|| RequestError::InvalidVendor("a project reference is required".into()))?;
        let groups = resource.dual_approval_groups.clone();
        let mut request = Self::submit(input, sponsor, context, catalog, now)?;
        request.vendor = Some(Vendor::new(ask, &project, &request.id)?);
        request.routing = RouteDecision {
            route: Route::Dual { groups },
            reason: "vendor access: the sponsor's manager and security approve".into(),
        };
        request.approvals = Vec::new();
        request.status = Status::Pending;
        Ok(request)
    }

    /// The vendor, for vendor access.
    pub fn vendor_of(&self) -> Option<&Vendor> {
        self.vendor.as_ref()
    }

    /// Whose IAM user holds the grant: the vendor's for vendor access, else the
    /// requester's.
    pub fn grantee(&self) -> &PrincipalId {
        self.vendor.as_ref().map_or(&self.requester, Vendor::user)
    }

    /// The secret this grant checks out, if it is a credential checkout.
    pub fn checkout(&self) -> Option<&str> {
        self.checkout.as_deref()
    }

    /// The roles the grant lets its holder assume.
    pub fn assumable_roles(&self) -> &[String] {
        &self.assumable_roles
    }

    /// When the grant was revoked.
    pub fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.revoked_at
    }

    /// The break-glass part, for break-glass access.
    pub fn break_glass_state(&self) -> Option<&BreakGlass> {
        self.break_glass.as_ref()
    }

    fn break_glass_mut(&mut self) -> Result<&mut BreakGlass, RequestError> {
        self.break_glass.as_mut().ok_or(RequestError::NotBreakGlass)
    }

    /// The requester's justification of their break-glass use.
    pub fn justify_break_glass(
        &mut self,
        by: &PrincipalId,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, RequestError> {
        if by != &self.requester {
            return Err(RequestError::NotRequester);
        }
        let changed = self.break_glass_mut()?.justify(text, now)?;
        if changed {
            self.updated_at = now;
        }
        Ok(changed)
    }

    /// A reviewer's finding on a break-glass use.
    pub fn review_break_glass(
        &mut self,
        reviewer: &Principal,
        finding: Finding,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<ReviewOutcome, RequestError> {
        let requester = self.requester.clone();
        let outcome = self
            .break_glass_mut()?
            .review(reviewer, &requester, finding, note, now)?;
        if outcome != ReviewOutcome::AlreadyRecorded {
            self.updated_at = now;
        }
        Ok(outcome)
    }

    /// Marks a justification-timeline step done. `Ok(false)`: it was not due (done
    /// already, or the use has been answered).
    pub fn nudge_break_glass(
        &mut self,
        nudge: Nudge,
        now: DateTime<Utc>,
    ) -> Result<bool, RequestError> {
        let state = self.break_glass_mut()?;
        if state.nudge_due(now) != Some(nudge) {
            return Ok(false);
        }
        state.mark(nudge);
        self.updated_at = now;
        Ok(true)
    }

    /// Asks for more time on an active grant. The extension is a request of its own,
    /// scored and routed like any other for the extra time; the grant's total length
    /// may not exceed the resource's maximum.
    pub fn submit_extension(
        grant: &AccessRequest,
        extra: Span,
        justification: String,
        requester: &Principal,
        context: RequesterContext,
        catalog: &Catalog,
        now: DateTime<Utc>,
    ) -> Result<Self, RequestError> {
        if requester.id() != &grant.requester {
            return Err(RequestError::NotRequester);
        }
        let (Status::Active, Some(window)) = (grant.status, grant.window) else {
            return Err(RequestError::InvalidTransition {
                from: grant.status,
                action: "extend",
            });
        };
        let total_seconds = (window.expires_at - window.starts_at).num_seconds() + extra.seconds();
        let total = Span::from_seconds(total_seconds).unwrap_or(extra);
        grant.within_cap(total, catalog)?;
        let mut extension = Self::submit(
            NewRequest {
                resource: grant.resource.clone(),
                duration: Some(extra),
                justification,
                ticket: grant.ticket.clone(),
            },
            requester,
            context,
            catalog,
            now,
        )?;
        extension.extends = Some(grant.id.clone());
        extension.inherit_route(grant, now);
        Ok(extension)
    }

    /// Is `total` within what this grant may ever last: the resource's maximum, and
    /// for break-glass the break-glass cap too? Checked when an extension is asked
    /// and again when it is merged (extensions asked side by side add up).
    fn within_cap(&self, total: Span, catalog: &Catalog) -> Result<(), RequestError> {
        let resource =
            catalog
                .resource(&self.resource)
                .ok_or_else(|| RequestError::UnknownResource {
                    resource: self.resource.clone(),
                })?;
        if self.break_glass.is_some() {
            let cap = catalog
                .tunables()
                .break_glass_cap
                .min(resource.max_duration);
            if total > cap {
                return Err(RequestError::BreakGlassOverCap {
                    requested: total,
                    cap,
                });
            }
        }
        if total > resource.max_duration {
            return Err(RequestError::DurationTooLong {
                resource: resource.id.clone(),
                requested: total,
                max: resource.max_duration,
            });
        }
        Ok(())
    }

    /// An extension goes at least the way its grant went: a vendor's or a
    /// high-risk grant's extension needs its two approvals again, whatever the
    /// extra time scores, and a break-glass grant's extension (within the cap) is
    /// break-glass too.
    fn inherit_route(&mut self, grant: &AccessRequest, now: DateTime<Utc>) {
        fn strictness(route: &Route) -> u8 {
            match route {
                Route::AutoApprove => 0,
                Route::Owner { .. } => 1,
                Route::Dual { .. } => 2,
                Route::BreakGlass => 3,
            }
        }
        let inherited = &grant.routing.route;
        if strictness(inherited) <= strictness(&self.routing.route) {
            return;
        }
        self.routing = RouteDecision {
            route: inherited.clone(),
            reason: format!(
                "extends grant {}, which went this way: {}",
                grant.id, grant.routing.reason
            ),
        };
        if *inherited == Route::BreakGlass {
            self.approvals = grant
                .approvals
                .iter()
                .map(|a| Approval {
                    at: now,
                    ..a.clone()
                })
                .collect();
            self.status = Status::Approved;
        } else {
            self.approvals.clear();
            self.status = Status::Pending;
        }
    }

    /// Merges an approved extension into this active grant's window. Idempotent:
    /// merging the same extension again returns the window unchanged.
    pub fn merge_extension(
        &mut self,
        extension: &mut AccessRequest,
        catalog: &Catalog,
        now: DateTime<Utc>,
    ) -> Result<GrantWindow, RequestError> {
        let (Status::Active, Some(window)) = (self.status, self.window) else {
            return Err(RequestError::InvalidTransition {
                from: self.status,
                action: "extend",
            });
        };
        if extension.extends.as_ref() != Some(&self.id) {
            return Err(RequestError::InvalidTransition {
                from: extension.status,
                action: "merge an unrelated extension into",
            });
        }
        if self.extensions.contains(&extension.id) {
            // Merged already; a crash may have kept the extension's own write from landing.
            if extension.status == Status::Approved {
                extension.window = Some(GrantWindow {
                    starts_at: now,
                    expires_at: window.expires_at,
                });
                extension.set_status(Status::Active, now);
            }
            return Ok(window);
        }
        if extension.status != Status::Approved {
            return Err(RequestError::InvalidTransition {
                from: extension.status,
                action: "merge",
            });
        }
        let extended = GrantWindow {
            starts_at: window.starts_at,
            expires_at: window.expires_at + extension.duration.delta(),
        };
        let total = (extended.expires_at - extended.starts_at).num_seconds();
        self.within_cap(
            Span::from_seconds(total).unwrap_or(extension.duration),
            catalog,
        )?;
        extension.window = Some(GrantWindow {
            starts_at: window.expires_at,
            expires_at: extended.expires_at,
        });
        extension.set_status(Status::Active, now);
        self.window = Some(extended);
        self.extensions.push(extension.id.clone());
        self.updated_at = now;
        Ok(extended)
    }

    /// May this person end the grant early? The holder, or anyone in the resource's
    /// owner or approver groups.
    pub fn may_revoke(&self, who: &Principal, catalog: &Catalog) -> bool {
        who.id() == &self.requester
            || catalog.resource(&self.resource).is_some_and(|r| {
                who.is_member(&r.owner_group)
                    || r.dual_approval_groups.iter().any(|g| who.is_member(g))
            })
    }

    /// May this person see the request? The requester, anyone who could decide on
    /// it, and the resource's owners and approvers.
    pub fn may_view(&self, who: &Principal, catalog: &Catalog) -> bool {
        self.may_revoke(who, catalog) || self.routing.route.slots().iter().any(|g| who.is_member(g))
    }

    /// Records an approver's decision.
    pub fn decide(
        &mut self,
        approver: &Principal,
        verdict: Verdict,
        comment: &str,
        now: DateTime<Utc>,
    ) -> Result<DecisionOutcome, RequestError> {
        let who = approver.id();
        if who == &self.requester {
            return Err(RequestError::SelfApproval(who.clone()));
        }
        let already_approved = self.approvals.iter().any(|a| &a.approver == who);
        match (self.status, verdict) {
            (Status::Pending, _) => {}
            (_, Verdict::Approve) if already_approved => {
                return Ok(DecisionOutcome::AlreadyRecorded);
            }
            (Status::Denied, Verdict::Deny)
                if self.denial.as_ref().is_some_and(|d| &d.by == who) =>
            {
                return Ok(DecisionOutcome::AlreadyRecorded);
            }
            (status, _) => return Err(RequestError::NotPending { status }),
        }
        if now >= self.pending_deadline {
            return Err(RequestError::PendingTimedOut {
                deadline: self.pending_deadline,
            });
        }
        if verdict == Verdict::Approve && already_approved {
            return Ok(DecisionOutcome::AlreadyRecorded);
        }
        let open = self.open_slots();
        match verdict {
            Verdict::Deny => {
                // Anyone who could approve any slot of this request may deny it.
                let eligible = self
                    .routing
                    .route
                    .slots()
                    .iter()
                    .any(|g| approver.is_member(g));
                if !eligible {
                    return Err(RequestError::NotEligible {
                        approver: who.clone(),
                        needed: self.routing.route.slots().to_vec(),
                    });
                }
                self.denial = Some(Denial {
                    by: who.clone(),
                    at: now,
                    comment: comment.to_owned(),
                });
                self.set_status(Status::Denied, now);
                Ok(DecisionOutcome::Denied)
            }
            Verdict::Approve => {
                let Some(slot) = open.iter().position(|g| approver.is_member(g)) else {
                    return Err(RequestError::NotEligible {
                        approver: who.clone(),
                        needed: open,
                    });
                };
                self.approvals.push(Approval {
                    approver: who.clone(),
                    group: open[slot].clone(),
                    at: now,
                    comment: comment.to_owned(),
                });
                self.updated_at = now;
                let mut remaining = open;
                remaining.remove(slot);
                if remaining.is_empty() {
                    self.set_status(Status::Approved, now);
                    Ok(DecisionOutcome::Approved)
                } else {
                    Ok(DecisionOutcome::Recorded { remaining })
                }
            }
        }
    }

    /// Groups still needing an approver, one entry per open slot.
    pub fn open_slots(&self) -> Vec<String> {
        let mut open = self.routing.route.slots().to_vec();
        for approval in &self.approvals {
            if let Some(i) = open.iter().position(|g| g == &approval.group) {
                open.remove(i);
            }
        }
        open
    }

    /// Marks a pending request expired once its deadline has passed; `true` if it changed.
    pub fn expire_if_overdue(&mut self, now: DateTime<Utc>) -> bool {
        if self.status == Status::Pending && now >= self.pending_deadline {
            self.set_status(Status::Expired, now);
            true
        } else {
            false
        }
    }

    /// The requester withdraws a pending or approved (not yet granted) request.
    /// Returns `false` when it was already cancelled.
    pub fn cancel(&mut self, by: &Principal, now: DateTime<Utc>) -> Result<bool, RequestError> {
        if by.id() != &self.requester {
            return Err(RequestError::NotRequester);
        }
        self.withdraw(by.id().as_str(), "cancelled by the requester", now)
            .map_err(|err| match err {
                RequestError::InvalidTransition { from, .. } => RequestError::InvalidTransition {
                    from,
                    action: "cancel",
                },
                other => other,
            })
    }

    /// `actor` withdraws a pending or approved (not yet granted) request for
    /// `reason` (Lapse does when the requester's access was revoked). Returns
    /// `false` when it was already cancelled, keeping the first actor and reason;
    /// an active grant is refused (it must be ended through the lifecycle).
    pub fn withdraw(
        &mut self,
        actor: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, RequestError> {
        match self.status {
            Status::Cancelled => Ok(false),
            Status::Pending | Status::Approved => {
                self.set_status(Status::Cancelled, now);
                self.cancellation = Some(Cancellation {
                    by: actor.to_owned(),
                    reason: reason.to_owned(),
                });
                Ok(true)
            }
            from => Err(RequestError::InvalidTransition {
                from,
                action: "withdraw",
            }),
        }
    }

    /// Starts the grant window, recording the IAM artifact it puts in place;
    /// repeating it returns the same window.
    pub fn activate(
        &mut self,
        artifact: Artifact,
        now: DateTime<Utc>,
    ) -> Result<GrantWindow, RequestError> {
        match (self.status, self.window) {
            (Status::Active, Some(window)) => Ok(window),
            (Status::Approved, _) => {
                // Whole seconds: IAM's aws:CurrentTime bound carries no fraction, and
                // the window must end exactly where IAM stops honouring the grant.
                let start = now.trunc_subsecs(0);
                let window = GrantWindow {
                    starts_at: start,
                    expires_at: start + self.duration.delta(),
                };
                self.window = Some(window);
                self.artifact = Some(artifact);
                self.set_status(Status::Active, now);
                Ok(window)
            }
            (from, _) => Err(RequestError::InvalidTransition {
                from,
                action: "activate",
            }),
        }
    }

    /// Records that the grant's IAM artifacts were removed (not yet verified).
    /// Returns `false` when it was already revoked.
    pub fn mark_revoked(
        &mut self,
        cause: RevokeCause,
        now: DateTime<Utc>,
    ) -> Result<bool, RequestError> {
        match self.status {
            Status::Revoked | Status::Verified => Ok(false),
            Status::Active => {
                self.revoke_cause = Some(cause);
                self.revoked_at = Some(now);
                self.set_status(Status::Revoked, now);
                Ok(true)
            }
            from => Err(RequestError::InvalidTransition {
                from,
                action: "revoke",
            }),
        }
    }

    /// Records that IAM was read back and holds nothing of the grant.
    /// Returns `false` when it was already verified.
    pub fn mark_verified(&mut self, now: DateTime<Utc>) -> Result<bool, RequestError> {
        match self.status {
            Status::Verified => Ok(false),
            Status::Revoked => {
                self.set_status(Status::Verified, now);
                Ok(true)
            }
            from => Err(RequestError::InvalidTransition {
                from,
                action: "verify",
            }),
        }
    }

    fn set_status(&mut self, status: Status, now: DateTime<Utc>) {
        debug_assert!(
            self.status.successors().contains(&status),
            "{} -> {status}",
            self.status
        );
        self.status = status;
        self.updated_at = now;
    }

    /// After a store has written this value at `version`.
    pub fn committed_at_version(&mut self, version: u64) {
        self.version = version;
    }

    pub fn id(&self) -> &RequestId {
        &self.id
    }
    pub fn requester(&self) -> &PrincipalId {
        &self.requester
    }
    pub fn resource(&self) -> &str {
        &self.resource
    }
    pub fn duration(&self) -> Span {
        self.duration
    }
    pub fn justification(&self) -> &str {
        &self.justification
    }
    pub fn ticket(&self) -> Option<&str> {
        self.ticket.as_deref()
    }
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    pub fn pending_deadline(&self) -> DateTime<Utc> {
        self.pending_deadline
    }
    pub fn context(&self) -> &RequesterContext {
        &self.context
    }
    pub fn risk(&self) -> &RiskAssessment {
        &self.risk
    }
    pub fn routing(&self) -> &RouteDecision {
        &self.routing
    }
    pub fn approvals(&self) -> &[Approval] {
        &self.approvals
    }
    pub fn denial(&self) -> Option<&Denial> {
        self.denial.as_ref()
    }
    /// Who withdrew the request and why; `None` unless it was cancelled (or it was
    /// cancelled before Lapse kept this).
    pub fn cancellation(&self) -> Option<&Cancellation> {
        self.cancellation.as_ref()
    }
    pub fn status(&self) -> Status {
        self.status
    }
    pub fn window(&self) -> Option<GrantWindow> {
        self.window
    }
    pub fn revoke_cause(&self) -> Option<RevokeCause> {
        self.revoke_cause
    }
    /// The IAM artifact the grant put in place (once active).
    pub fn artifact(&self) -> Option<&Artifact> {
        self.artifact.as_ref()
    }
    /// For an extension, the grant it extends.
    pub fn extends(&self) -> Option<&RequestId> {
        self.extends.as_ref()
    }
    /// For a grant, the extensions merged into it.
    pub fn extensions(&self) -> &[RequestId] {
        &self.extensions
    }
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
    pub fn policy_hash(&self) -> &PolicyHash {
        &self.policy_hash
    }
    /// The store version this value was read at (0 before it is first written).
    pub fn version(&self) -> u64 {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::EmploymentType;
    use crate::testing::{catalog, employee_context, monday_at, person};

    fn test_artifact() -> Artifact {
        Artifact::InlinePolicy {
            name: "lapse-test".into(),
        }
    }

    fn submit(resource: &str, duration: &str) -> AccessRequest {
        let input = NewRequest {
            resource: resource.into(),
            duration: Some(duration.parse().unwrap()),
            justification: "INC-42 investigate".into(),
            ticket: Some("INC-42".into()),
        };
        AccessRequest::submit(
            input,
            &person("rita", &[]),
            employee_context(),
            &catalog(),
            monday_at(10),
        )
        .unwrap()
    }

    #[test]
    fn auto_approved_request_starts_approved() {
        let req = submit("billing-reports-read", "30m");
        assert_eq!(req.status(), Status::Approved);
        assert_eq!(req.approvals().len(), 1);
        assert_eq!(req.approvals()[0].group, "auto");
    }

    #[test]
    fn owner_approval_path() {
        let mut req = submit("staging-logs-read", "4h");
        assert_eq!(req.status(), Status::Pending);
        let owner = person("olga", &["platform-owners"]);
        let out = req
            .decide(&owner, Verdict::Approve, "ok", monday_at(11))
            .unwrap();
        assert_eq!(out, DecisionOutcome::Approved);
        assert_eq!(
            req.decide(&owner, Verdict::Approve, "ok", monday_at(11))
                .unwrap(),
            DecisionOutcome::AlreadyRecorded
        );
        assert_eq!(req.approvals().len(), 1);
    }

    #[test]
    fn dual_approval_needs_two_distinct_people_from_the_groups() {
        let mut req = submit("prod-db-admin", "2h");
        let both = person("bo", &["managers", "security"]);
        let outsider = person("otto", &["billing-owners"]);
        let sec = person("sam", &["security"]);
        assert!(matches!(
            req.decide(&outsider, Verdict::Approve, "", monday_at(11)),
            Err(RequestError::NotEligible { .. })
        ));
        assert_eq!(
            req.decide(&both, Verdict::Approve, "", monday_at(11))
                .unwrap(),
            DecisionOutcome::Recorded {
                remaining: vec!["security".into()]
            }
        );
        // The same person cannot fill the second slot.
        assert_eq!(
            req.decide(&both, Verdict::Approve, "", monday_at(11))
                .unwrap(),
            DecisionOutcome::AlreadyRecorded
        );
        assert_eq!(req.status(), Status::Pending);
        assert_eq!(
            req.decide(&sec, Verdict::Approve, "", monday_at(12))
                .unwrap(),
            DecisionOutcome::Approved
        );
        assert_eq!(req.status(), Status::Approved);
    }

    #[test]
    fn requester_cannot_approve_even_when_in_the_group() {
        let mut req = submit("staging-logs-read", "4h");
        let me = person("rita", &["platform-owners"]);
        assert!(matches!(
            req.decide(&me, Verdict::Approve, "", monday_at(11)),
            Err(RequestError::SelfApproval(_))
        ));
        assert!(matches!(
            req.decide(&me, Verdict::Deny, "", monday_at(11)),
            Err(RequestError::SelfApproval(_))
        ));
    }

    #[test]
    fn any_deny_ends_the_request() {
        let mut req = submit("prod-db-admin", "2h");
        req.decide(
            &person("mia", &["managers"]),
            Verdict::Approve,
            "",
            monday_at(11),
        )
        .unwrap();
        let sec = person("sam", &["security"]);
        assert_eq!(
            req.decide(&sec, Verdict::Deny, "no", monday_at(11))
                .unwrap(),
            DecisionOutcome::Denied
        );
        assert_eq!(req.status(), Status::Denied);
        assert_eq!(
            req.decide(&sec, Verdict::Deny, "no", monday_at(11))
                .unwrap(),
            DecisionOutcome::AlreadyRecorded
        );
        assert!(matches!(
            req.decide(
                &person("al", &["security"]),
                Verdict::Approve,
                "",
                monday_at(11)
            ),
            Err(RequestError::NotPending {
                status: Status::Denied
            })
        ));
    }

    #[test]
    fn decisions_after_the_deadline_are_rejected() {
        let mut req = submit("staging-logs-read", "4h");
        let late = req.pending_deadline();
        let owner = person("olga", &["platform-owners"]);
        assert!(matches!(
            req.decide(&owner, Verdict::Approve, "", late),
            Err(RequestError::PendingTimedOut { .. })
        ));
        assert!(req.expire_if_overdue(late));
        assert!(!req.expire_if_overdue(late));
        assert_eq!(req.status(), Status::Expired);
    }

    #[test]
    fn durations_above_the_cap_are_rejected() {
        let input = NewRequest {
            resource: "prod-db-admin".into(),
            duration: Some("5h".parse().unwrap()),
            justification: "x".into(),
            ticket: None,
        };
        let err = AccessRequest::submit(
            input,
            &person("rita", &[]),
            employee_context(),
            &catalog(),
            monday_at(10),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "requested 5h exceeds the 4h maximum for `prod-db-admin`"
        );
    }

    #[test]
    fn input_is_validated() {
        let base = NewRequest {
            resource: "staging-logs-read".into(),
            duration: None,
            justification: "why".into(),
            ticket: None,
        };
        let who = person("rita", &[]);
        let try_submit = |input: NewRequest| {
            AccessRequest::submit(input, &who, employee_context(), &catalog(), monday_at(10))
        };
        assert!(matches!(
            try_submit(NewRequest {
                resource: "nope".into(),
                ..base.clone()
            }),
            Err(RequestError::UnknownResource { .. })
        ));
        assert_eq!(
            try_submit(NewRequest {
                justification: "  ".into(),
                ..base.clone()
            }),
            Err(RequestError::JustificationMissing)
        );
        assert_eq!(
            try_submit(NewRequest {
                justification: "x".repeat(2001),
                ..base.clone()
            }),
            Err(RequestError::JustificationTooLong)
        );
        assert!(matches!(
            try_submit(NewRequest {
                ticket: Some("bad ticket".into()),
                ..base.clone()
            }),
            Err(RequestError::InvalidTicket(_))
        ));
        let req = try_submit(base).unwrap();
        assert_eq!(req.duration().to_string(), "4h", "default duration applies");
    }

    #[test]
    fn grant_lifecycle_is_idempotent() {
        let mut req = submit("billing-reports-read", "30m");
        let window = req.activate(test_artifact(), monday_at(10)).unwrap();
        assert_eq!(
            req.activate(test_artifact(), monday_at(11)).unwrap(),
            window
        );
        assert_eq!(req.artifact(), Some(&test_artifact()));
        assert_eq!((window.expires_at - window.starts_at).num_minutes(), 30);
        assert!(matches!(
            req.mark_verified(monday_at(11)),
            Err(RequestError::InvalidTransition {
                from: Status::Active,
                ..
            })
        ));
        assert!(
            req.mark_revoked(RevokeCause::Expiry, monday_at(11))
                .unwrap()
        );
        assert!(
            !req.mark_revoked(RevokeCause::Expiry, monday_at(11))
                .unwrap()
        );
        assert!(req.mark_verified(monday_at(11)).unwrap());
        assert!(!req.mark_verified(monday_at(11)).unwrap());
        assert_eq!(req.status(), Status::Verified);
    }

    #[test]
    fn only_the_requester_cancels() {
        let mut req = submit("staging-logs-read", "4h");
        assert_eq!(
            req.cancel(&person("olga", &["platform-owners"]), monday_at(10)),
            Err(RequestError::NotRequester)
        );
        let me = person("rita", &[]);
        assert_eq!(req.cancel(&me, monday_at(10)), Ok(true));
        assert_eq!(req.cancel(&me, monday_at(10)), Ok(false));
    }

    #[test]
    fn request_round_trips_through_json() {
        let req = submit("prod-db-admin", "2h");
        let json = serde_json::to_string(&req).unwrap();
        let back: AccessRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.context().employment, EmploymentType::Employee);
    }

    #[test]
    fn extensions_are_routed_capped_and_merged_once() {
        let c = catalog();
        let me = person("rita", &[]);
        let mut grant = submit("billing-reports-read", "30m");
        grant.activate(test_artifact(), monday_at(10)).unwrap();
        let too_long = AccessRequest::submit_extension(
            &grant,
            "8h".parse().unwrap(),
            "more".into(),
            &me,
            employee_context(),
            &c,
            monday_at(10),
        );
        assert!(matches!(
            too_long,
            Err(RequestError::DurationTooLong { .. })
        ));
        let other = person("olga", &["platform-owners"]);
        assert_eq!(
            AccessRequest::submit_extension(
                &grant,
                "30m".parse().unwrap(),
                "x".into(),
                &other,
                employee_context(),
                &c,
                monday_at(10)
            )
            .unwrap_err(),
            RequestError::NotRequester
        );
        let mut ext = AccessRequest::submit_extension(
            &grant,
            "2h".parse().unwrap(),
            "need more time".into(),
            &me,
            employee_context(),
            &c,
            monday_at(10),
        )
        .unwrap();
        assert_eq!(ext.extends(), Some(grant.id()));
        assert_eq!(
            ext.status(),
            Status::Pending,
            "2h is above the auto-approve limit"
        );
        assert!(
            grant.merge_extension(&mut ext, &c, monday_at(10)).is_err(),
            "not approved yet"
        );
        ext.decide(
            &person("bill", &["billing-owners"]),
            Verdict::Approve,
            "",
            monday_at(10),
        )
        .unwrap();
        let window = grant.merge_extension(&mut ext, &c, monday_at(10)).unwrap();
        assert_eq!((window.expires_at - window.starts_at).num_minutes(), 150);
        assert_eq!(
            grant.merge_extension(&mut ext, &c, monday_at(10)).unwrap(),
            window
        );
        assert_eq!(ext.status(), Status::Active);
        assert_eq!(grant.extensions(), [ext.id().clone()]);
    }

    fn active(mut grant: AccessRequest, at: DateTime<Utc>) -> AccessRequest {
        let artifact = crate::access::ledger::Artifact::InlinePolicy {
            name: format!("lapse-x-{}", grant.id()),
        };
        grant.activate(artifact, at).unwrap();
        grant
    }

    fn extension_of(grant: &AccessRequest, who: &Principal, extra: &str) -> AccessRequest {
        AccessRequest::submit_extension(
            grant,
            extra.parse().unwrap(),
            "more time".into(),
            who,
            employee_context(),
            &catalog(),
            monday_at(10),
        )
        .unwrap()
    }

    #[test]
    fn a_vendor_grants_extension_needs_its_two_approvals_again() {
        let c = catalog();
        let sponsor = person("rita", &[]);
        let mut grant = AccessRequest::vendor(
            NewRequest {
                resource: "billing-reports-read".into(),
                duration: Some("30m".parse().unwrap()),
                justification: "audit".into(),
                ticket: Some("PRJ-1".into()),
            },
            &crate::access::vendor::VendorAsk {
                id: "acme-ann".into(),
                email: "ann@acme.example".into(),
            },
            &sponsor,
            employee_context(),
            &c,
            monday_at(10),
        )
        .unwrap();
        for (who, group) in [("mia", "managers"), ("sam", "security")] {
            grant
                .decide(&person(who, &[group]), Verdict::Approve, "", monday_at(10))
                .unwrap();
        }
        let grant = active(grant, monday_at(10));
        // 30 more minutes of a low-risk resource would be approved at once.
        let ext = extension_of(&grant, &sponsor, "30m");
        assert_eq!(ext.status(), Status::Pending, "{:?}", ext.routing());
        assert_eq!(ext.routing().route, grant.routing().route);
        assert_eq!(ext.routing().route.slots().len(), 2);
    }

    #[test]
    fn a_break_glass_grant_extends_within_its_cap_only() {
        let c = catalog();
        let olga = person("olga", &["on-call"]);
        let grant = AccessRequest::break_glass(
            NewRequest {
                resource: "prod-db-admin".into(),
                duration: Some("1h".parse().unwrap()),
                justification: "INC-1".into(),
                ticket: None,
            },
            &olga,
            employee_context(),
            &c,
            monday_at(10),
        )
        .unwrap();
        let grant = active(grant, monday_at(10));
        let err = AccessRequest::submit_extension(
            &grant,
            "2h".parse().unwrap(),
            "still down".into(),
            &olga,
            employee_context(),
            &c,
            monday_at(10),
        )
        .unwrap_err();
        assert!(
            matches!(err, RequestError::BreakGlassOverCap { .. }),
            "3h of break-glass against a 2h cap: {err}"
        );
        let ext = extension_of(&grant, &olga, "1h");
        assert_eq!(ext.routing().route, Route::BreakGlass);
        assert_eq!(ext.status(), Status::Approved, "within the cap, at once");
    }

    #[test]
    fn the_maximum_is_enforced_when_extensions_are_merged_not_only_asked() {
        let c = catalog();
        let rita = person("rita", &[]);
        let bill = person("bill", &["billing-owners"]);
        let grant = AccessRequest::submit(
            NewRequest {
                resource: "billing-reports-read".into(),
                duration: Some("1h".parse().unwrap()),
                justification: "month end".into(),
                ticket: None,
            },
            &rita,
            employee_context(),
            &c,
            monday_at(10),
        )
        .unwrap();
        let mut grant = active(grant, monday_at(10));
        // Ten one-hour extensions asked side by side: each fits when asked.
        let mut asks: Vec<AccessRequest> = (0..10)
            .map(|_| {
                let mut ext = extension_of(&grant, &rita, "1h");
                if ext.status() == Status::Pending {
                    ext.decide(&bill, Verdict::Approve, "", monday_at(10))
                        .unwrap();
                }
                assert_eq!(ext.status(), Status::Approved);
                ext
            })
            .collect();
        let merged: Vec<bool> = asks
            .iter_mut()
            .map(|ext| grant.merge_extension(ext, &c, monday_at(10)).is_ok())
            .collect();
        assert_eq!(merged.iter().filter(|m| **m).count(), 7, "{merged:?}");
        let window = grant.window().unwrap();
        assert_eq!(
            (window.expires_at - window.starts_at).num_hours(),
            8,
            "the resource's maximum, not 11 h"
        );
    }

    #[test]
    fn revocation_and_visibility_authority() {
        let c = catalog();
        let req = submit("prod-db-admin", "2h");
        assert!(req.may_revoke(&person("rita", &[]), &c));
        assert!(req.may_revoke(&person("sam", &["security"]), &c));
        assert!(req.may_revoke(&person("olga", &["platform-owners"]), &c));
        assert!(!req.may_revoke(&person("otto", &["billing-owners"]), &c));
        assert!(!req.may_view(&person("otto", &["billing-owners"]), &c));
        assert!(req.may_view(&person("mia", &["managers"]), &c));
    }

    #[test]
    fn request_ids_parse_strictly() {
        let id = RequestId::generate();
        assert_eq!(RequestId::parse(id.as_str()).unwrap(), id);
        assert!(RequestId::parse("req-nope").is_err());
        assert!(RequestId::parse("../etc").is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const PEOPLE: &[(&str, &[&str])] = &[
            ("rita", &["platform-owners", "managers", "security"]),
            ("mia", &["managers"]),
            ("sam", &["security"]),
            ("bo", &["managers", "security"]),
            ("olga", &["platform-owners"]),
            ("otto", &["billing-owners"]),
        ];

        #[derive(Debug, Clone)]
        enum Op {
            Decide {
                who: usize,
                approve: bool,
                minutes: i64,
            },
            Cancel {
                who: usize,
            },
            Timeout,
            Activate,
            Revoke,
            Verify,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0..PEOPLE.len(), any::<bool>(), 0i64..120)
                    .prop_map(|(who, approve, minutes)| Op::Decide { who, approve, minutes }),
                1 => (0..PEOPLE.len()).prop_map(|who| Op::Cancel { who }),
                1 => Just(Op::Timeout),
                1 => Just(Op::Activate),
                1 => Just(Op::Revoke),
                1 => Just(Op::Verify),
            ]
        }

        fn apply(req: &mut AccessRequest, op: &Op, now: &mut DateTime<Utc>) -> bool {
            let who = |i: usize| person(PEOPLE[i].0, PEOPLE[i].1);
            match op {
                Op::Decide {
                    who: i,
                    approve,
                    minutes,
                } => {
                    *now += chrono::TimeDelta::minutes(*minutes);
                    let verdict = if *approve {
                        Verdict::Approve
                    } else {
                        Verdict::Deny
                    };
                    req.decide(&who(*i), verdict, "", *now).is_ok()
                }
                Op::Cancel { who: i } => req.cancel(&who(*i), *now).is_ok(),
                Op::Timeout => {
                    *now += chrono::TimeDelta::hours(25);
                    req.expire_if_overdue(*now)
                }
                Op::Activate => req
                    .activate(Artifact::GroupMembership { group: "g".into() }, *now)
                    .is_ok(),
                Op::Revoke => req.mark_revoked(RevokeCause::Expiry, *now).is_ok(),
                Op::Verify => req.mark_verified(*now).is_ok(),
            }
        }

        fn check_invariants(req: &AccessRequest) -> Result<(), TestCaseError> {
            let groups_of = |id: &PrincipalId| {
                PEOPLE
                    .iter()
                    .find(|(p, _)| *p == id.as_str())
                    .map(|(_, g)| *g)
                    .unwrap_or(&[])
            };
            let auto = req.routing().route == Route::AutoApprove;
            let mut approvers = std::collections::BTreeSet::new();
            for approval in req.approvals() {
                prop_assert_ne!(&approval.approver, req.requester(), "self-approval");
                prop_assert!(
                    approvers.insert(approval.approver.clone()),
                    "one person, one slot"
                );
                if !auto {
                    prop_assert!(groups_of(&approval.approver).contains(&approval.group.as_str()));
                    prop_assert!(
                        approval.at < req.pending_deadline(),
                        "approval after timeout"
                    );
                }
            }
            prop_assert!(req.approvals().len() <= req.routing().route.slots().len().max(1));
            if matches!(
                req.status(),
                Status::Approved | Status::Active | Status::Revoked | Status::Verified
            ) {
                prop_assert!(
                    req.open_slots().is_empty(),
                    "granted without every slot filled"
                );
            }
            prop_assert_eq!(req.status() == Status::Denied, req.denial().is_some());
            prop_assert_eq!(
                req.window().is_some(),
                matches!(
                    req.status(),
                    Status::Active | Status::Revoked | Status::Verified
                )
            );
            Ok(())
        }

        proptest! {
            #[test]
            fn lifecycle_invariants_hold(
                resource in prop::sample::select(vec![("staging-logs-read", "4h"), ("prod-db-admin", "2h"), ("billing-reports-read", "30m")]),
                ops in proptest::collection::vec(op(), 1..40),
            ) {
                let input = NewRequest {
                    resource: resource.0.into(),
                    duration: Some(resource.1.parse().unwrap()),
                    justification: "property".into(),
                    ticket: None,
                };
                let requester = person(PEOPLE[0].0, PEOPLE[0].1);
                let mut now = monday_at(10);
                let mut req = AccessRequest::submit(input, &requester, employee_context(), &catalog(), now).unwrap();
                for op in &ops {
                    let before = req.clone();
                    let changed = apply(&mut req, op, &mut now);
                    // Every change follows an edge of the state machine.
                    if req.status() != before.status() {
                        prop_assert!(before.status().successors().contains(&req.status()),
                            "{} -> {} via {:?}", before.status(), req.status(), op);
                    }
                    if !changed {
                        prop_assert_eq!(&req, &before, "a rejected operation changed the request");
                    }
                    // Repeating an operation at the same instant has no further effect.
                    let once = req.clone();
                    let mut same_now = now;
                    let repeat = match op {
                        Op::Decide { who, approve, .. } => Op::Decide { who: *who, approve: *approve, minutes: 0 },
                        Op::Timeout => Op::Timeout,
                        other => other.clone(),
                    };
                    if !matches!(op, Op::Timeout) {
                        apply(&mut req, &repeat, &mut same_now);
                        prop_assert_eq!(&req, &once, "{:?} is not idempotent", op);
                    }
                    check_invariants(&req)?;
                }
            }
        }
    }
}
