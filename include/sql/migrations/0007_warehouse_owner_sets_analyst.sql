-- The role that runs the migrations (the warehouse owner) may act as psops_analyst
-- with SET ROLE, as every finance UI connection does.
-- On PostgreSQL 16+ a role created by a CREATEROLE non-superuser (0001, as the
-- compose owner `psops`) makes its creator a member WITH ADMIN but neither SET nor
-- INHERIT, so SET ROLE is refused; before 16 the creator is no member at all.
-- Superusers may always SET ROLE: nothing to grant. Idempotent.
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN;
    END IF;
    IF current_setting('server_version_num')::int >= 160000 THEN
        IF NOT pg_has_role(current_user, 'psops_analyst', 'SET') THEN
            EXECUTE format('GRANT psops_analyst TO %I WITH INHERIT FALSE, SET TRUE', current_user);
        END IF;
    ELSIF NOT pg_has_role(current_user, 'psops_analyst', 'MEMBER') THEN
        EXECUTE format('GRANT psops_analyst TO %I', current_user);
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE EXCEPTION 'psops: role % may not grant itself psops_analyst (it needs ADMIN on that role, which creating it gives)', current_user
        USING HINT = format('as a superuser: GRANT psops_analyst TO %I WITH SET TRUE (PostgreSQL 16+) or GRANT psops_analyst TO %I', current_user, current_user);
END
$$;
