//! TLS to the event store with `sslmode=verify-full`: the server's certificate must chain to
//! `sslrootcert` and name the host connected to. Against a private Postgres cluster whose
//! certificate this test's own CA signed (the shared Postgres is left alone).

use sqlx::{Connection, PgConnection};
use waybill_e2e::private_postgres::PrivatePostgres;
use waybill_e2e::{assert_succeeded, TestEnv};

/// In the range reserved for these tests (15300-15399).
const PORT: u16 = 15311;

#[tokio::test]
async fn verify_full_connects_with_the_right_ca_and_refuses_a_wrong_ca_or_host() {
    let server = PrivatePostgres::start("cockroach-tls", PORT);

    // The right CA and the name on the certificate: connected, over TLS.
    let mut conn = PgConnection::connect(&server.url("localhost", "postgres", &server.ca))
        .await
        .expect("verify-full with the right CA connects");
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .expect("read pg_stat_ssl");
    assert!(ssl, "the session is encrypted");
    let _ = conn.close().await;

    // A CA that did not sign the server's certificate.
    let wrong_ca = PgConnection::connect(&server.url("localhost", "postgres", &server.other_ca))
        .await
        .expect_err("a certificate from another CA is refused");
    let message = format!("{wrong_ca:?}");
    assert!(message.contains("UnknownIssuer"), "{message}");

    // The right CA, but a host the certificate does not name (it names localhost only).
    let wrong_host = PgConnection::connect(&server.url("127.0.0.1", "postgres", &server.ca))
        .await
        .expect_err("a certificate for another name is refused");
    let message = format!("{wrong_host:?}");
    assert!(message.contains("NotValidForName"), "{message}");

    // The binary takes the same URL: `waybill migrate` creates and migrates a database there.
    let env = TestEnv::new("postgres_tls").await;
    let url = server.url("localhost", "waybill_tls", &server.ca);
    let output = env.run_migrate(&[("DATABASE_URL", &url)]).await;
    assert_succeeded(&output, "waybill migrate over verify-full");
    let wrong_host = server.url("127.0.0.1", "waybill_tls", &server.ca);
    let output = env.run_migrate(&[("DATABASE_URL", &wrong_host)]).await;
    assert!(
        !output.status.success(),
        "a host the certificate does not name is refused"
    );
}
