"""Development tooling for the DTSEN pipeline, apart from the product package `dtsen` (which is what
the image deploys): the synthetic generator, evaluation against its ground truth, fitting the
ranking model, the main job on the bundled sample and the local Airflow launcher. Installed with
the `dev` extra; the product never imports it."""
