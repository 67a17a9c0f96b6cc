"""Task interfaces in CASA task XML, installed as ``almaqa_casa.xml`` (data only)."""
