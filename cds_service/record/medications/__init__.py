"""Medication history (clinical-rules.md §1, §10): which ingredient a resource is about (``resolver``), its
period and daily dose (``daily_dose``), the merged exposure periods per ingredient (``exposures``) and the
completed ketamine and esketamine administrations (``administrations``).

Sources: MedicationStatement and MedicationRequest history, MedicationAdministration, medication coded at product
level (RxNorm SCD/SBD, NDC) or ingredient level, inline or by ``medicationReference`` (contained ``#id`` or
``Medication/<id>`` among the fetched resources). Unknown periods and doses are flagged on the
``MedicationUse``, never dropped.
"""
