//! `junit.xml`: one test case per SLA check, so CI systems show the verdict natively. A failed
//! check carries measured vs target; an inconclusive one is skipped with its reason.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{ReportError, fmt};
use crate::metrics::{CheckStatus, Summary};

pub fn render(s: &Summary) -> Result<Vec<u8>, ReportError> {
    let mut suite = TestSuite::new(format!("gauntlet.{}", s.scenario));
    suite.set_time(std::time::Duration::from_secs_f64(
        (s.duration_s + s.warmup_s).max(0.0),
    ));
    if s.sla.checks.is_empty() {
        // No promise to check: the run itself is the one case, failing only if it was cut short.
        let status = if s.interrupted {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
            st.set_message("the run was interrupted before it finished");
            st
        } else {
            TestCaseStatus::success()
        };
        let mut case = TestCase::new("run", status);
        case.set_classname(format!("gauntlet.{}", s.scenario));
        suite.add_test_case(case);
    }
    for c in &s.sla.checks {
        let target = format!(
            "{} {}",
            fmt::bound_symbol(&c.unit),
            fmt::in_unit(c.target, &c.unit)
        );
        let measured = c
            .measured
            .map(|m| fmt::in_unit(m, &c.unit))
            .unwrap_or_else(|| "nothing measured".into());
        let status = match c.status {
            CheckStatus::Pass => TestCaseStatus::success(),
            CheckStatus::Fail => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(format!("measured {measured}, target {target}"));
                st.set_type("sla_violated");
                if let Some(note) = &c.note {
                    st.set_description(note.clone());
                }
                st
            }
            CheckStatus::Inconclusive => {
                let mut st = TestCaseStatus::skipped();
                st.set_message(
                    c.note
                        .clone()
                        .unwrap_or_else(|| format!("inconclusive: {} samples", c.samples)),
                );
                st
            }
        };
        let mut case = TestCase::new(format!("{} [{}]", c.name, c.scope), status);
        case.set_classname(format!("gauntlet.{}.sla", s.scenario));
        case.set_system_out(format!(
            "target {target}; measured {measured}; samples {}",
            c.samples
        ));
        suite.add_test_case(case);
    }
    let mut report = Report::new("gauntlet");
    report.add_test_suite(suite);
    let mut out = Vec::new();
    report
        .serialize(&mut out)
        .map_err(|e| ReportError::render("junit.xml", e))?;
    Ok(out)
}
