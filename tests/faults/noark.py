"""A full Noark 5 arkivmelding.xml, as a case-management system sends it, for the scenarios
whose channels read it (DPF's SvarUt wants its journalpost, DPO's receiver checks it)."""

from __future__ import annotations

ARKIVMELDING_XML = """<?xml version="1.0" encoding="utf-8"?>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding"
              xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <system>Fagsystem</system>
  <meldingId>{message_id}</meldingId>
  <tidspunkt>2026-03-02T09:15:00+01:00</tidspunkt>
  <antallFiler>1</antallFiler>
  <mappe xsi:type="saksmappe">
    <systemID>{message_id}-sak</systemID>
    <tittel>Byggesak Storgata 5</tittel>
    <opprettetDato>2026-03-01T08:00:00+01:00</opprettetDato>
    <opprettetAv>Saksbehandler</opprettetAv>
    <basisregistrering xsi:type="journalpost">
      <systemID>{message_id}-jp</systemID>
      <opprettetDato>2026-03-02T09:00:00+01:00</opprettetDato>
      <opprettetAv>Saksbehandler</opprettetAv>
      <referanseForelderMappe>{message_id}-sak</referanseForelderMappe>
      <dokumentbeskrivelse>
        <systemID>{message_id}-dok</systemID>
        <dokumenttype>Vedtak</dokumenttype>
        <dokumentstatus>Dokumentet er ferdigstilt</dokumentstatus>
        <tittel>Vedtak</tittel>
        <opprettetDato>2026-03-02T09:00:00+01:00</opprettetDato>
        <opprettetAv>Saksbehandler</opprettetAv>
        <tilknyttetRegistreringSom>Hoveddokument</tilknyttetRegistreringSom>
        <dokumentnummer>1</dokumentnummer>
        <tilknyttetDato>2026-03-02T09:00:00+01:00</tilknyttetDato>
        <tilknyttetAv>Saksbehandler</tilknyttetAv>
        <dokumentobjekt>
          <versjonsnummer>1</versjonsnummer>
          <variantformat>Produksjonsformat</variantformat>
          <opprettetDato>2026-03-02T09:00:00+01:00</opprettetDato>
          <opprettetAv>Saksbehandler</opprettetAv>
          <referanseDokumentfil>{main}</referanseDokumentfil>
        </dokumentobjekt>
      </dokumentbeskrivelse>
      <tittel>Vedtak i byggesak Storgata 5 (intern)</tittel>
      <offentligTittel>Vedtak i byggesak Storgata 5</offentligTittel>
      <journalaar>2026</journalaar>
      <journalsekvensnummer>25</journalsekvensnummer>
      <journalpostnummer>13</journalpostnummer>
      <journalposttype>Utgående dokument</journalposttype>
      <journalstatus>Ekspedert</journalstatus>
      <journaldato>2026-03-02</journaldato>
      <korrespondansepart>
        <korrespondanseparttype>Avsender</korrespondanseparttype>
        <korrespondansepartNavn>Sandkasse A</korrespondansepartNavn>
        <postadresse>Rådhusgata 1</postadresse><postnummer>0151</postnummer>
        <poststed>Oslo</poststed>
        <saksbehandler>Kari Nordmann</saksbehandler>
      </korrespondansepart>
    </basisregistrering>
    <saksaar>2026</saksaar>
    <sakssekvensnummer>7</sakssekvensnummer>
    <saksdato>2026-03-01</saksdato>
    <administrativEnhet>Byggesak</administrativEnhet>
    <saksansvarlig>Kari Nordmann</saksansvarlig>
    <saksstatus>Under behandling</saksstatus>
  </mappe>
</arkivmelding>"""


def arkivmelding_xml(message_id: str, main: str = "vedtak.pdf") -> bytes:
    """The arkivmelding of message ``message_id``, naming ``main`` as its main document."""
    return ARKIVMELDING_XML.format(message_id=message_id, main=main).encode()
