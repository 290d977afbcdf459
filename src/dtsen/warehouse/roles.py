"""The components' warehouse logins (sql/migrations/0030_least_privilege_roles.sql).

The migration makes the group roles `dtsen_round`, `dtsen_api` and `dtsen_cockpit`, with the privileges
each component needs and nothing more, and without LOGIN. A deployment's logins are members of them:
`dtsen db migrate`, run as the owner, makes (or updates) the login each component is configured with,
from its URL (DTSEN_DATABASE_URL for the round, DTSEN_API_DATABASE_URL, DTSEN_COCKPIT_DATABASE_URL),
with that URL's password. A URL that names the owner itself (the private cluster, a trial) or another
server is left alone. The password reaches the server only as a SCRAM verifier computed here.
"""

from __future__ import annotations

import psycopg
from psycopg import errors, sql
from sqlalchemy.engine import make_url

from dtsen.config import Settings
from dtsen.errors import DataError

ROLES = {"round": "dtsen_round", "api": "dtsen_api", "cockpit": "dtsen_cockpit"}
SETTING = {
    "round": "DTSEN_DATABASE_URL",
    "api": "DTSEN_API_DATABASE_URL",
    "cockpit": "DTSEN_COCKPIT_DATABASE_URL",
}
_LEAST = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"


def _target(url: str) -> tuple:
    u = make_url(url)
    return (u.host or "", u.port or 5432, u.database)


def ensure_logins(conn: psycopg.Connection, cfg: Settings, owner_url: str) -> list[str]:
    """Make each configured component's login a member of its role, with its URL's password; one line
    per component saying what was done (names only, never a password)."""
    owner = conn.execute("SELECT current_user").fetchone()[0]
    urls = {"round": cfg.database_url, "api": cfg.api_database_url, "cockpit": cfg.cockpit_database_url}
    seen: dict[str, str] = {}
    done = []
    for component, url in urls.items():
        if not url:
            continue
        user, password = make_url(url).username, make_url(url).password
        if _target(url) != _target(owner_url):
            done.append(
                f"{component}: {SETTING[component]} is another server or database; its login is not made here"
            )
            continue
        if not user or user == owner:
            done.append(
                f"{component}: connects as the owner {owner} (give it a login of its own in production)"
            )
            continue
        if user in ROLES.values():
            raise DataError(
                f"{SETTING[component]} names the role {user} itself: give the {component} a login of its own "
                f"(e.g. {user}_login), which `dtsen db migrate` makes a member of {user}"
            )
        if user in seen:
            raise DataError(
                f"{SETTING[component]} and {SETTING[seen[user]]} name the same login {user}: each component "
                "needs its own"
            )
        seen[user] = component
        with conn.transaction():
            done.append(f"{component}: {_ensure_login(conn, user, password, ROLES[component])}")
    return done


def _ensure_login(conn: psycopg.Connection, user: str, password: str | None, group: str) -> str:
    row = conn.execute(
        "SELECT rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls FROM pg_roles "
        "WHERE rolname = %s",
        (user,),
    ).fetchone()
    if row is not None and row[0]:
        raise DataError(
            f"the login {user} has superuser, createdb, createrole, replication or bypassrls: refused"
        )
    secret = (
        sql.SQL(" PASSWORD {}").format(
            sql.Literal(conn.pgconn.encrypt_password(password.encode(), user.encode()).decode())
        )
        if password
        else sql.SQL("")
    )
    verb = "CREATE" if row is None else "ALTER"
    try:
        with conn.transaction():  # savepoint: a login another migrate made just now is altered instead
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN " + _LEAST + "{}").format(sql.Identifier(user), secret)
            )
    except (errors.DuplicateObject, errors.UniqueViolation):  # another `dtsen db migrate` made it just now
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN " + _LEAST + "{}").format(sql.Identifier(user), secret))
    conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(user)))
    others = [
        r
        for (r,) in conn.execute(
            "SELECT m.roleid::regrole::text FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member "
            "WHERE u.rolname = %s AND m.roleid::regrole::text <> %s ORDER BY 1",
            (user, group),
        )
    ]
    if others:
        raise DataError(
            f"the login {user} is also a member of {', '.join(others)}: it must be one of {group} only"
        )
    return f"login {user} is a member of {group}" + (" (password set)" if password else "")
