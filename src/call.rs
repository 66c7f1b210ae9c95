//! Calls inside a room (protocol v1.1 §6): a pure state machine the server enforces. Pure.
//!
//! Invariants:
//! - A call is a value: its participants (join order, the caller first), the invitations that
//!   ring, and when it was first accepted. Every transition is a function of (calls, event, now)
//!   that answers the frames to send ([`Outcome`]); the room sequences and delivers them, stores
//!   the calls that changed, and announces `status` changes.
//! - A peer is in at most one call, ringing or participating ([`Calls::call_of`]).
//! - A call ends (`call_ended` to whoever is still in it) when fewer than two participants remain
//!   after someone had accepted, when nobody is left to come and nobody accepted (the caller
//!   alone), or at its maximum duration. Refused actions change nothing.
//! - Time comes in as an argument; ring timeouts and the maximum duration are deadlines the room's
//!   one scheduler carries ([`Calls::deadlines`]); everything a deadline needs is in the stored
//!   call, so it holds across eviction.

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::protocol::{PeerId, Refusal, ServerFrame};

/// Default `CALL_RING_TIMEOUT_MS`.
pub const DEFAULT_RING_TIMEOUT_MS: u64 = 30_000;
/// Default `MAX_CALL_DURATION_MS` (one hour).
pub const DEFAULT_MAX_CALL_DURATION_MS: u64 = 3_600_000;

/// The call settings (`CALL_RING_TIMEOUT_MS`, `MAX_CALL_DURATION_MS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    pub ring_timeout_ms: u64,
    pub max_duration_ms: u64,
}

impl CallLimits {
    pub const DEFAULT: CallLimits = CallLimits {
        ring_timeout_ms: DEFAULT_RING_TIMEOUT_MS,
        max_duration_ms: DEFAULT_MAX_CALL_DURATION_MS,
    };
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits::DEFAULT
    }
}

/// What a call carries, as the caller asked (`media`, default both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    pub audio: bool,
    pub video: bool,
}

impl Default for Media {
    fn default() -> Self {
        Media {
            audio: true,
            video: true,
        }
    }
}

/// Why an invitee will not come (`call_rejected.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    Declined,
    Busy,
    NoAnswer,
}

/// Why a call ended for the receiver (`call_ended.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The other side hung up.
    Hangup,
    /// Invitee: the caller hung up (or left) before you answered.
    Cancelled,
    /// Caller: nobody will come; the last invitee declined.
    Rejected,
    /// Caller: nobody will come; the last invitee was busy.
    Busy,
    /// Caller: nobody will come, the last invitation timed out. Invitee: you did not answer.
    NoAnswer,
    MaxDuration,
    /// The other side left the room or did not come back within the grace.
    Disconnect,
}

impl From<RejectReason> for EndReason {
    fn from(reason: RejectReason) -> Self {
        match reason {
            RejectReason::Declined => EndReason::Rejected,
            RejectReason::Busy => EndReason::Busy,
            RejectReason::NoAnswer => EndReason::NoAnswer,
        }
    }
}

/// Why a participant left a call that goes on (`call_left.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftReason {
    Hangup,
    Disconnect,
}

/// An invitation that rings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invite {
    pub peer: PeerId,
    pub since_ms: u64,
}

/// One call: what storage holds of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    pub id: String,
    pub media: Media,
    /// In join order; the caller first.
    pub participants: Vec<PeerId>,
    pub ringing: Vec<Invite>,
    /// The first accept: the maximum duration counts from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_ms: Option<u64>,
    /// Why the last invitee will not come: what the caller hears if nobody does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reject: Option<RejectReason>,
    /// When the call was initiated (ms), for its setup time.
    #[serde(default)]
    pub created_ms: u64,
}

impl Call {
    fn has(&self, peer: &PeerId) -> bool {
        self.participants.contains(peer) || self.ringing.iter().any(|i| &i.peer == peer)
    }
}

/// What a transition answers: frames (in order), and which calls changed or ended (for
/// storage), and whose `in_call` status may have changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub frames: Vec<(PeerId, ServerFrame)>,
    /// Calls to store (their new state).
    pub changed: Vec<Call>,
    /// Ids of calls that ended (drop from storage).
    pub ended: Vec<String>,
    /// Peers that joined or left a call (ringing included).
    pub touched: Vec<PeerId>,
    /// What happened, for logs and metrics: (call id, outcome: `started`, `accepted`,
    /// `rejected:<reason>`, `left:<reason>`, `ended:<reason>`, and for a first accept the setup
    /// time in ms).
    pub events: Vec<(String, String, Option<u64>)>,
}

impl Outcome {
    fn send(&mut self, to: &PeerId, frame: ServerFrame) {
        self.frames.push((to.clone(), frame));
    }

    fn event(&mut self, call: &str, what: String, setup_ms: Option<u64>) {
        self.events.push((call.to_owned(), what, setup_ms));
    }

    fn touch(&mut self, peer: &PeerId) {
        if !self.touched.contains(peer) {
            self.touched.push(peer.clone());
        }
    }
}

/// A `call_initiate` frame.
#[derive(Debug, Clone, Copy)]
pub struct Initiate<'a> {
    pub from: &'a PeerId,
    pub to: &'a [PeerId],
    pub media: Media,
    /// The call to invite more peers to; none for a new call.
    pub call_id: Option<&'a str>,
}

/// A call deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallDue {
    /// `peer`'s invitation to `call` stops ringing.
    RingTimeout { call: String, peer: PeerId },
    /// `call` reaches `MAX_CALL_DURATION_MS`.
    MaxDuration { call: String },
}

/// The calls of one room.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calls {
    calls: Vec<Call>,
    limits: CallLimits,
}

fn invalid_state(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::InvalidState, message)
}

fn not_found(call_id: &str) -> Refusal {
    let short: String = call_id.chars().take(64).collect();
    Refusal::new(
        ErrorCode::CallNotFound,
        format!("no call `{short}` in this room"),
    )
}

impl Calls {
    pub fn new(limits: CallLimits) -> Calls {
        Calls {
            calls: Vec::new(),
            limits,
        }
    }

    /// The calls as storage held them (after an eviction).
    pub fn with_calls(mut self, calls: impl IntoIterator<Item = Call>) -> Calls {
        self.calls.extend(calls);
        self
    }

    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// The call `peer` is in (ringing or participating).
    pub fn call_of(&self, peer: &PeerId) -> Option<&Call> {
        self.calls.iter().find(|c| c.has(peer))
    }

    pub fn in_call(&self, peer: &PeerId) -> bool {
        self.call_of(peer).is_some()
    }

    fn position(&self, call_id: &str) -> Result<usize, Refusal> {
        self.calls
            .iter()
            .position(|c| c.id == call_id)
            .ok_or_else(|| not_found(call_id))
    }

    /// `call_initiate`: a new call (`call_id` none; `new_id` names it) or more invitees to the
    /// call `call_id` that `from` participates in. `is_member` says who is in the room (and not
    /// away: an away peer cannot be invited).
    pub fn initiate(
        &mut self,
        initiate: Initiate<'_>,
        new_id: String,
        is_member: &dyn Fn(&PeerId) -> bool,
        now_ms: u64,
    ) -> Result<Outcome, Refusal> {
        let Initiate {
            from,
            to,
            media,
            call_id,
        } = initiate;
        if to.is_empty() {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "`to` must name at least one peer",
            ));
        }
        if let Some(me) = to.iter().find(|p| *p == from) {
            return Err(invalid_state(format!(
                "you cannot invite yourself ({})",
                me.as_str()
            )));
        }
        if let Some(missing) = to.iter().find(|p| !is_member(p)) {
            return Err(Refusal::new(
                ErrorCode::TargetNotFound,
                format!("peer `{}` is not in this room", missing.as_str()),
            ));
        }
        let index = match call_id {
            None => {
                if self.in_call(from) {
                    return Err(invalid_state(
                        "you are already in a call; hang up first, or invite with its callId",
                    ));
                }
                self.calls.push(Call {
                    id: new_id,
                    media,
                    participants: vec![from.clone()],
                    ringing: Vec::new(),
                    accepted_ms: None,
                    last_reject: None,
                    created_ms: now_ms,
                });
                self.calls.len() - 1
            }
            Some(id) => {
                let index = self.position(id)?;
                if !self.calls[index].participants.contains(from) {
                    return Err(invalid_state(
                        "only a participant of a call can invite to it",
                    ));
                }
                if let Some(p) = to.iter().find(|p| self.calls[index].has(p)) {
                    return Err(invalid_state(format!(
                        "peer `{}` is already in this call",
                        p.as_str()
                    )));
                }
                index
            }
        };
        let mut out = Outcome::default();
        if call_id.is_none() {
            out.event(&self.calls[index].id.clone(), "started".into(), None);
        }
        out.touch(from);
        let mut ringing = Vec::new();
        let mut busy = Vec::new();
        for peer in to {
            if ringing.contains(peer) || busy.contains(peer) {
                continue;
            }
            if self.in_call(peer) {
                busy.push(peer.clone());
            } else {
                ringing.push(peer.clone());
            }
        }
        let call = &mut self.calls[index];
        for peer in &ringing {
            call.ringing.push(Invite {
                peer: peer.clone(),
                since_ms: now_ms,
            });
            out.touch(peer);
        }
        let id = call.id.clone();
        out.send(
            from,
            ServerFrame::CallRinging {
                call_id: id.clone(),
                to: ringing.clone(),
            },
        );
        let participants = call.participants.clone();
        for peer in &ringing {
            out.send(
                peer,
                ServerFrame::CallIncoming {
                    call_id: id.clone(),
                    from: from.clone(),
                    media: call.media,
                    participants: participants.clone(),
                },
            );
        }
        for peer in &busy {
            call.last_reject = Some(RejectReason::Busy);
            for p in &participants {
                out.send(
                    p,
                    ServerFrame::CallRejected {
                        call_id: id.clone(),
                        peer_id: peer.clone(),
                        reason: RejectReason::Busy,
                    },
                );
            }
        }
        self.settle(index, &mut out, EndReason::Hangup);
        Ok(out)
    }

    /// `call_answer` from `from`.
    pub fn answer(
        &mut self,
        from: &PeerId,
        call_id: &str,
        now_ms: u64,
    ) -> Result<Outcome, Refusal> {
        let index = self.position(call_id)?;
        let call = &mut self.calls[index];
        let Some(at) = call.ringing.iter().position(|i| &i.peer == from) else {
            return Err(invalid_state("this call is not ringing for you"));
        };
        call.ringing.remove(at);
        call.participants.push(from.clone());
        let first = call.accepted_ms.is_none();
        call.accepted_ms.get_or_insert(now_ms);
        let mut out = Outcome::default();
        let setup = first.then(|| now_ms.saturating_sub(call.created_ms));
        out.event(&call.id, "accepted".into(), setup);
        for p in &call.participants {
            out.send(
                p,
                ServerFrame::CallAccepted {
                    call_id: call.id.clone(),
                    peer_id: from.clone(),
                    participants: call.participants.clone(),
                },
            );
        }
        out.changed.push(call.clone());
        Ok(out)
    }

    /// `call_reject` from `from` (an invitee).
    pub fn reject(
        &mut self,
        from: &PeerId,
        call_id: &str,
        reason: RejectReason,
    ) -> Result<Outcome, Refusal> {
        let index = self.position(call_id)?;
        if !self.calls[index].ringing.iter().any(|i| &i.peer == from) {
            return Err(invalid_state("this call is not ringing for you"));
        }
        let mut out = Outcome::default();
        self.drop_invite(index, from, reason, &mut out);
        self.settle(index, &mut out, EndReason::Hangup);
        Ok(out)
    }

    /// `call_hangup` from `from`: a participant leaves (a caller whose call still rings cancels
    /// it); an invitee whose call rings declines it.
    pub fn hangup(&mut self, from: &PeerId, call_id: &str) -> Result<Outcome, Refusal> {
        let index = self.position(call_id)?;
        let mut out = Outcome::default();
        if self.calls[index].ringing.iter().any(|i| &i.peer == from) {
            self.drop_invite(index, from, RejectReason::Declined, &mut out);
            self.settle(index, &mut out, EndReason::Hangup);
            return Ok(out);
        }
        if !self.calls[index].participants.contains(from) {
            return Err(invalid_state("you are not in this call"));
        }
        self.leave(index, from, LeftReason::Hangup, &mut out);
        Ok(out)
    }

    /// `peer` left the room (or its grace ended): it leaves any call it is in.
    pub fn depart(&mut self, peer: &PeerId) -> Outcome {
        let mut out = Outcome::default();
        let Some(index) = self.calls.iter().position(|c| c.has(peer)) else {
            return out;
        };
        if self.calls[index].ringing.iter().any(|i| &i.peer == peer) {
            self.drop_invite(index, peer, RejectReason::NoAnswer, &mut out);
            self.settle(index, &mut out, EndReason::Disconnect);
        } else {
            self.leave(index, peer, LeftReason::Disconnect, &mut out);
        }
        out
    }

    /// Everything due at `now_ms`: invitations that rang out, calls at their maximum duration.
    pub fn on_due(&mut self, now_ms: u64) -> Outcome {
        let mut out = Outcome::default();
        let mut index = 0;
        while index < self.calls.len() {
            let call = &self.calls[index];
            if call
                .accepted_ms
                .is_some_and(|at| at.saturating_add(self.limits.max_duration_ms) <= now_ms)
            {
                let call = self.calls.remove(index);
                for p in call
                    .participants
                    .iter()
                    .chain(call.ringing.iter().map(|i| &i.peer))
                {
                    out.send(
                        p,
                        ServerFrame::CallEnded {
                            call_id: call.id.clone(),
                            reason: EndReason::MaxDuration,
                        },
                    );
                    out.touch(p);
                }
                out.ended.push(call.id);
                continue;
            }
            let expired: Vec<PeerId> = call
                .ringing
                .iter()
                .filter(|i| i.since_ms.saturating_add(self.limits.ring_timeout_ms) <= now_ms)
                .map(|i| i.peer.clone())
                .collect();
            if expired.is_empty() {
                index += 1;
                continue;
            }
            let id = call.id.clone();
            for peer in &expired {
                out.send(
                    peer,
                    ServerFrame::CallEnded {
                        call_id: id.clone(),
                        reason: EndReason::NoAnswer,
                    },
                );
                self.drop_invite(index, peer, RejectReason::NoAnswer, &mut out);
            }
            if self.settle(index, &mut out, EndReason::Hangup) {
                index += 1;
            }
        }
        out
    }

    /// Every call deadline.
    pub fn deadlines(&self) -> impl Iterator<Item = (u64, CallDue)> + '_ {
        self.calls.iter().flat_map(move |call| {
            let rings = call.ringing.iter().map(move |i| {
                (
                    i.since_ms.saturating_add(self.limits.ring_timeout_ms),
                    CallDue::RingTimeout {
                        call: call.id.clone(),
                        peer: i.peer.clone(),
                    },
                )
            });
            let limit = call.accepted_ms.map(|at| {
                (
                    at.saturating_add(self.limits.max_duration_ms),
                    CallDue::MaxDuration {
                        call: call.id.clone(),
                    },
                )
            });
            rings.chain(limit)
        })
    }

    /// The earliest call deadline, without building them.
    pub fn next_deadline(&self) -> Option<u64> {
        self.calls
            .iter()
            .flat_map(|call| {
                let ring = call.ringing.iter().map(|i| i.since_ms).min();
                ring.map(|at| at.saturating_add(self.limits.ring_timeout_ms))
                    .into_iter()
                    .chain(
                        call.accepted_ms
                            .map(|at| at.saturating_add(self.limits.max_duration_ms)),
                    )
            })
            .min()
    }

    /// Removes `peer`'s invitation; the participants hear `call_rejected`.
    fn drop_invite(
        &mut self,
        index: usize,
        peer: &PeerId,
        reason: RejectReason,
        out: &mut Outcome,
    ) {
        let call = &mut self.calls[index];
        call.ringing.retain(|i| &i.peer != peer);
        call.last_reject = Some(reason);
        out.touch(peer);
        out.event(&call.id, format!("rejected:{}", reject_str(reason)), None);
        for p in &call.participants {
            out.send(
                p,
                ServerFrame::CallRejected {
                    call_id: call.id.clone(),
                    peer_id: peer.clone(),
                    reason,
                },
            );
        }
    }

    /// A participant leaves: the others hear `call_left` if the call goes on.
    fn leave(&mut self, index: usize, peer: &PeerId, reason: LeftReason, out: &mut Outcome) {
        let call = &mut self.calls[index];
        call.participants.retain(|p| p != peer);
        out.touch(peer);
        let left = match reason {
            LeftReason::Hangup => "left:hangup",
            LeftReason::Disconnect => "left:disconnect",
        };
        out.event(&call.id, left.into(), None);
        if !must_end(call) {
            for p in &call.participants {
                out.send(
                    p,
                    ServerFrame::CallLeft {
                        call_id: call.id.clone(),
                        peer_id: peer.clone(),
                        reason,
                    },
                );
            }
        }
        let end_reason = match reason {
            LeftReason::Hangup => EndReason::Hangup,
            LeftReason::Disconnect => EndReason::Disconnect,
        };
        self.settle(index, out, end_reason);
    }

    /// Ends the call at `index` if it must (see the module's invariants), telling whoever is
    /// still in it; otherwise records the change. `reason` is what the last participant hears
    /// when the others left. Answers whether the call goes on.
    fn settle(&mut self, index: usize, out: &mut Outcome, reason: EndReason) -> bool {
        let call = &self.calls[index];
        if !must_end(call) {
            out.changed.push(call.clone());
            return true;
        }
        let call = self.calls.remove(index);
        let for_participant = if call.accepted_ms.is_none() {
            call.last_reject.map_or(reason, EndReason::from)
        } else {
            reason
        };
        for p in &call.participants {
            out.send(
                p,
                ServerFrame::CallEnded {
                    call_id: call.id.clone(),
                    reason: for_participant,
                },
            );
            out.touch(p);
        }
        let for_invitee = match reason {
            EndReason::MaxDuration => EndReason::MaxDuration,
            _ => EndReason::Cancelled,
        };
        for invite in &call.ringing {
            out.send(
                &invite.peer,
                ServerFrame::CallEnded {
                    call_id: call.id.clone(),
                    reason: for_invitee,
                },
            );
            out.touch(&invite.peer);
        }
        out.changed.retain(|c| c.id != call.id);
        let how = if call.accepted_ms.is_some() {
            end_str(reason)
        } else {
            end_str(call.last_reject.map_or(reason, EndReason::from))
        };
        out.event(&call.id, format!("ended:{how}"), None);
        out.ended.push(call.id);
        false
    }
}

/// Whether `call` is over: alone after someone had accepted, nobody left to come before anyone
/// accepted, or nobody left in it.
fn must_end(call: &Call) -> bool {
    let alone_after_accept = call.accepted_ms.is_some() && call.participants.len() < 2;
    let nobody_coming = call.accepted_ms.is_none() && call.ringing.is_empty();
    alone_after_accept || nobody_coming || call.participants.is_empty()
}

fn reject_str(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::Declined => "declined",
        RejectReason::Busy => "busy",
        RejectReason::NoAnswer => "no_answer",
    }
}

fn end_str(reason: EndReason) -> &'static str {
    match reason {
        EndReason::Hangup => "hangup",
        EndReason::Cancelled => "cancelled",
        EndReason::Rejected => "rejected",
        EndReason::Busy => "busy",
        EndReason::NoAnswer => "no_answer",
        EndReason::MaxDuration => "max_duration",
        EndReason::Disconnect => "disconnect",
    }
}
