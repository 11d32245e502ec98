"""A deployment from before checkpoints moved into the database keeps its signed history."""

from __future__ import annotations

from sqlalchemy import text

from gateway.audit.verify import verify_log
from gateway.bootstrap import Services, build_services
from gateway.clock import FixedClock
from tests.audit.support import decision_event


def test_migration_imports_the_checkpoint_directory_and_publication_extends_it(
    services: Services, clock: FixedClock
) -> None:
    for number in range(3):
        services.audit.append([decision_event(services, number)])
    published = services.publisher.publish()
    assert published is not None
    settings = services.settings
    services.close()

    # Put the database back as revision 0005 left it: checkpoints only as files.
    directory = settings.home / "checkpoints"
    assert (directory / "000000000003.txt").read_text(encoding="utf-8") == published.note
    (directory / "000000000003.txt.part").write_text("debris of an interrupted write")
    old = build_services(settings, clock)
    with old.engine.begin() as connection:
        connection.execute(text("DROP TABLE checkpoints"))
        connection.execute(text("DROP TABLE policy_in_force"))
        connection.execute(text("DROP TABLE screening_results"))  # 0008
        connection.execute(text("DROP TABLE console_sessions"))  # 0010
        connection.execute(text("DROP TABLE console_sign_ins"))
        connection.execute(text("DROP INDEX ix_grants_created_at"))
        connection.execute(text("ALTER TABLE grants DROP COLUMN issuer"))
        connection.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    old.close()

    upgraded = build_services(settings, clock)
    try:
        assert upgraded.audit.checkpoint_notes() == [published.note]
        upgraded.audit.append([decision_event(upgraded, 3)])
        extended = upgraded.publisher.publish()
        assert extended is not None and extended.size == 4
        report = verify_log(
            upgraded.audit.entries(),
            origin=upgraded.audit.origin,
            public_key=upgraded.keys.audit_signer.public_key(),
            checkpoint_notes=upgraded.audit.checkpoint_notes(),
            anchored=upgraded.anchors.checkpoints(),
            state=upgraded.audit.tree_state(),
        )
        assert report.ok and report.checkpoints == 4 and report.unsigned == 0
    finally:
        upgraded.close()
