"""What an admin sees, as JSON-ready rows: the same shapes from the HTTP API, its event stream
and `sipsync-admin --data-dir`, so that every way of looking prints the same."""

from __future__ import annotations

from dataclasses import asdict

from ..events import DeviceOffline
from ..location import Binding
from ..sessions import SessionRecord
from ..throttle import Ban
from ..store import AdminRow, DeviceRow, ShareRow, TokenRow, UserRow


def user_row(user: UserRow) -> dict:
    return {"name": user.name, "disabled": user.disabled, "devices": user.devices,
            "created_at": user.created_at}


def device_row(device: DeviceRow, online: Binding | None) -> dict:
    last_seen = device.last_seen
    if online is not None:
        last_seen = max(last_seen or 0.0, online.last_seen)
    return {"user": device.user, "device": device.name, "online": online is not None,
            "disabled": device.disabled, "last_seen": last_seen, "created_at": device.created_at}


def share_row(share: ShareRow) -> dict:
    return {"device": f"{share.owner}/{share.device}", "owner": share.owner,
            "device_name": share.device, "user": share.grantee}


def account_row(account: AdminRow | TokenRow) -> dict:
    """An admin account or an API token: never its password hash or token hash."""
    return {"name": account.name, "role": account.role, "created_at": account.created_at}


def online_row(binding: Binding, now: float) -> dict:
    return {
        "user": binding.user, "device": binding.device,
        "address": str(binding.source), "transport": binding.source.transport,
        "contact": binding.contact, "user_agent": binding.user_agent,
        "registered_at": binding.registered_at, "last_seen": binding.last_seen,
        "expires_at": binding.expires_at, "expires_in": round(binding.expires_at - now, 1),
    }


def offline_row(event: DeviceOffline) -> dict:
    return {"user": event.user, "device": event.device, "reason": event.reason}


def ban_row(ban: Ban) -> dict:
    """A ban: of an `address` or a `user` for failed logins, or of an address for a `flood`."""
    return {"kind": ban.kind.value, "who": ban.who, "until": ban.until, "count": ban.count}


def session_row(record: SessionRecord, now: float) -> dict:
    """A session with its duration and, while data moves, its rate in bytes per second."""
    row = asdict(record)
    row["duration"] = None if record.duration is None else round(record.duration, 3)
    row["rate"] = _rate(record, now)
    return row


def _rate(record: SessionRecord, now: float) -> float | None:
    done = record.progress.get("bytes") if record.progress else None
    if not done or record.established_at is None:
        return None
    elapsed = (record.ended_at or now) - record.established_at
    return round(done / elapsed, 1) if elapsed > 0 else None
