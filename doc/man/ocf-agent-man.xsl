<?xml version="1.0"?>
<!--
  ocf-agent-man.xsl: an OCF agent's meta-data -> its man page,
  ocf_messaging_<agent>(7), in roff (man macros).

  Copyright (C) 2026 the resource-agents-messaging authors
  SPDX-License-Identifier: GPL-2.0-or-later

  The same idea as resource-agents' doc/man/ra2refentry.xsl (the page is
  never written by hand, so it cannot drift from what `meta-data` says),
  but straight to roff: no DocBook toolchain at build time.

  Parameters (xsltproc -\-stringparam):
    provider  the OCF provider, "messaging"
    version   the package version, for the page footer
  Text handling: every longdesc is re-filled line by line; a blank line
  starts a new paragraph. Roff's control characters are escaped (a leading
  "." or "'", and every backslash), so an agent's text can never become a
  roff request.
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="text" encoding="UTF-8"/>
  <xsl:strip-space elements="*"/>

  <xsl:param name="provider" select="'messaging'"/>
  <xsl:param name="version" select="''"/>

  <xsl:variable name="nl" select="'&#10;'"/>
  <xsl:variable name="lower" select="'abcdefghijklmnopqrstuvwxyz'"/>
  <xsl:variable name="upper" select="'ABCDEFGHIJKLMNOPQRSTUVWXYZ'"/>

  <xsl:template match="/resource-agent">
    <xsl:variable name="agent" select="@name"/>
    <xsl:variable name="page" select="concat('ocf_', $provider, '_', $agent)"/>

    <xsl:text>.\" Generated from the agent's meta-data by ocf-agent-man.xsl; do not edit.&#10;</xsl:text>
    <xsl:text>.TH "</xsl:text>
    <xsl:value-of select="translate($page, $lower, $upper)"/>
    <xsl:text>" "7" "" "resource-agents-messaging </xsl:text>
    <xsl:value-of select="$version"/>
    <xsl:text>" "OCF resource agents"&#10;</xsl:text>

    <xsl:text>.SH NAME&#10;</xsl:text>
    <xsl:call-template name="escape">
      <xsl:with-param name="text" select="$page"/>
    </xsl:call-template>
    <xsl:text> \- </xsl:text>
    <xsl:call-template name="escape">
      <xsl:with-param name="text" select="normalize-space(shortdesc)"/>
    </xsl:call-template>
    <xsl:value-of select="$nl"/>

    <xsl:text>.SH SYNOPSIS&#10;.B </xsl:text>
    <xsl:value-of select="$agent"/>
    <xsl:text>&#10;[</xsl:text>
    <xsl:for-each select="actions/action[not(@name = preceding-sibling::action/@name)]">
      <xsl:if test="position() > 1">
        <xsl:text> | </xsl:text>
      </xsl:if>
      <xsl:call-template name="escape">
        <xsl:with-param name="text" select="@name"/>
      </xsl:call-template>
    </xsl:for-each>
    <xsl:text>]&#10;</xsl:text>

    <xsl:text>.SH DESCRIPTION&#10;</xsl:text>
    <xsl:call-template name="paragraphs">
      <xsl:with-param name="text" select="longdesc"/>
      <xsl:with-param name="break" select="'.PP'"/>
    </xsl:call-template>

    <xsl:if test="parameters/parameter">
      <xsl:text>.SH SUPPORTED PARAMETERS&#10;</xsl:text>
      <xsl:apply-templates select="parameters/parameter"/>
    </xsl:if>

    <xsl:text>.SH SUPPORTED ACTIONS&#10;</xsl:text>
    <xsl:text>Minimum timeouts and default intervals the agent advertises; Pacemaker, not the agent, enforces them.&#10;</xsl:text>
    <xsl:apply-templates select="actions/action"/>

    <xsl:text>.SH EXAMPLE CRM SHELL&#10;</xsl:text>
    <xsl:text>The following is an example configuration for a </xsl:text>
    <xsl:value-of select="$agent"/>
    <xsl:text> resource using the crm(8) shell:&#10;.PP&#10;.nf&#10;.RS 4&#10;</xsl:text>
    <xsl:text>primitive p_</xsl:text>
    <xsl:value-of select="$agent"/>
    <xsl:text> ocf:</xsl:text>
    <xsl:value-of select="concat($provider, ':', $agent)"/>
    <xsl:call-template name="example-params">
      <xsl:with-param name="first" select="' \e&#10;  params'"/>
      <xsl:with-param name="continue" select="' \e&#10;    '"/>
    </xsl:call-template>
    <xsl:for-each select="actions/action[@name = 'monitor']">
      <xsl:text> \e&#10;  op monitor</xsl:text>
      <xsl:call-template name="example-op"/>
    </xsl:for-each>
    <xsl:text>&#10;.RE&#10;.fi&#10;</xsl:text>

    <xsl:text>.SH EXAMPLE PCS&#10;</xsl:text>
    <xsl:text>The following is an example configuration for a </xsl:text>
    <xsl:value-of select="$agent"/>
    <xsl:text> resource using pcs(8):&#10;.PP&#10;.nf&#10;.RS 4&#10;</xsl:text>
    <xsl:text>pcs resource create p_</xsl:text>
    <xsl:value-of select="$agent"/>
    <xsl:text> ocf:</xsl:text>
    <xsl:value-of select="concat($provider, ':', $agent)"/>
    <xsl:call-template name="example-params">
      <xsl:with-param name="first" select="' \e&#10;  '"/>
      <xsl:with-param name="continue" select="' \e&#10;  '"/>
    </xsl:call-template>
    <xsl:for-each select="actions/action[@name = 'monitor']">
      <xsl:choose>
        <xsl:when test="position() = 1">
          <xsl:text> \e&#10;  op monitor</xsl:text>
        </xsl:when>
        <xsl:otherwise>
          <xsl:text> \e&#10;  monitor</xsl:text>
        </xsl:otherwise>
      </xsl:choose>
      <xsl:call-template name="example-op"/>
    </xsl:for-each>
    <xsl:text>&#10;.RE&#10;.fi&#10;</xsl:text>

    <xsl:text>.SH SEE ALSO&#10;</xsl:text>
    <xsl:text>.BR msg-probe (8),&#10;.BR msg-recover (8),&#10;</xsl:text>
    <xsl:text>.BR crm (8),&#10;.BR pcs (8),&#10;.BR crm_resource (8)&#10;</xsl:text>
  </xsl:template>

  <!-- One entry per parameter: its name, then indented below it the
       shortdesc with the parameter's attributes, then the longdesc. -->
  <xsl:template match="parameter">
    <xsl:text>.PP&#10;.B </xsl:text>
    <xsl:call-template name="escape">
      <xsl:with-param name="text" select="@name"/>
    </xsl:call-template>
    <xsl:text>&#10;.RS 4&#10;.I "</xsl:text>
    <xsl:call-template name="escape">
      <xsl:with-param name="text" select="translate(normalize-space(shortdesc), '&quot;', &quot;'&quot;)"/>
    </xsl:call-template>
    <xsl:text>"&#10;(</xsl:text>
    <xsl:if test="@required = '1'">
      <xsl:text>required, </xsl:text>
    </xsl:if>
    <xsl:if test="@unique-group">
      <xsl:text>unique-group: </xsl:text>
      <xsl:call-template name="escape">
        <xsl:with-param name="text" select="@unique-group"/>
      </xsl:call-template>
      <xsl:text>, </xsl:text>
    </xsl:if>
    <xsl:if test="@unique = '1'">
      <xsl:text>unique, </xsl:text>
    </xsl:if>
    <xsl:if test="@reloadable = '1'">
      <xsl:text>reloadable, </xsl:text>
    </xsl:if>
    <xsl:if test="deprecated">
      <xsl:text>deprecated, </xsl:text>
    </xsl:if>
    <xsl:value-of select="content/@type"/>
    <xsl:if test="content/@default != ''">
      <xsl:text>, default </xsl:text>
      <xsl:call-template name="escape">
        <xsl:with-param name="text" select="concat('&quot;', content/@default, '&quot;')"/>
      </xsl:call-template>
    </xsl:if>
    <xsl:text>)&#10;.br&#10;</xsl:text>
    <xsl:call-template name="paragraphs">
      <xsl:with-param name="text" select="longdesc"/>
      <xsl:with-param name="break" select="'.PP'"/>
    </xsl:call-template>
    <xsl:text>.RE&#10;</xsl:text>
  </xsl:template>

  <xsl:template match="action">
    <xsl:text>.TP&#10;.B </xsl:text>
    <xsl:call-template name="escape">
      <xsl:with-param name="text" select="@name"/>
    </xsl:call-template>
    <xsl:value-of select="$nl"/>
    <xsl:if test="@depth">
      <xsl:text>depth </xsl:text>
      <xsl:value-of select="@depth"/>
      <xsl:text> (OCF_CHECK_LEVEL), </xsl:text>
    </xsl:if>
    <xsl:text>timeout </xsl:text>
    <xsl:value-of select="@timeout"/>
    <xsl:if test="@interval">
      <xsl:text>, interval </xsl:text>
      <xsl:value-of select="@interval"/>
    </xsl:if>
    <xsl:if test="@role">
      <xsl:text>, role </xsl:text>
      <xsl:value-of select="@role"/>
    </xsl:if>
    <xsl:value-of select="$nl"/>
  </xsl:template>

  <!-- Required parameters in the examples, as ra2refentry does: the others
       have defaults. -->
  <xsl:template name="example-params">
    <xsl:param name="first"/>
    <xsl:param name="continue"/>
    <xsl:for-each select="parameters/parameter[@required = '1']">
      <xsl:choose>
        <xsl:when test="position() = 1">
          <xsl:value-of select="$first"/>
          <xsl:if test="$first != $continue">
            <xsl:text> </xsl:text>
          </xsl:if>
        </xsl:when>
        <xsl:otherwise>
          <xsl:value-of select="$continue"/>
        </xsl:otherwise>
      </xsl:choose>
      <xsl:value-of select="concat(@name, '=', content/@type)"/>
    </xsl:for-each>
  </xsl:template>

  <xsl:template name="example-op">
    <xsl:text> interval="</xsl:text>
    <xsl:value-of select="@interval"/>
    <xsl:text>" timeout="</xsl:text>
    <xsl:value-of select="@timeout"/>
    <xsl:text>"</xsl:text>
    <xsl:if test="@depth and @depth != '0'">
      <xsl:text> OCF_CHECK_LEVEL="</xsl:text>
      <xsl:value-of select="@depth"/>
      <xsl:text>"</xsl:text>
    </xsl:if>
  </xsl:template>

  <!-- paragraphs: TEXT one output line per non-blank input line (trimmed),
       BREAK (a macro) between runs of lines separated by blank lines. -->
  <xsl:template name="paragraphs">
    <xsl:param name="text"/>
    <xsl:param name="break"/>
    <xsl:param name="started" select="false()"/>
    <xsl:param name="gap" select="false()"/>
    <xsl:if test="string-length($text) > 0">
      <xsl:variable name="line">
        <xsl:choose>
          <xsl:when test="contains($text, $nl)">
            <xsl:value-of select="normalize-space(substring-before($text, $nl))"/>
          </xsl:when>
          <xsl:otherwise>
            <xsl:value-of select="normalize-space($text)"/>
          </xsl:otherwise>
        </xsl:choose>
      </xsl:variable>
      <xsl:variable name="blank" select="string-length($line) = 0"/>
      <xsl:if test="not($blank)">
        <xsl:if test="$started and $gap">
          <xsl:value-of select="concat($break, $nl)"/>
        </xsl:if>
        <xsl:call-template name="escape-line">
          <xsl:with-param name="text" select="$line"/>
        </xsl:call-template>
        <xsl:value-of select="$nl"/>
      </xsl:if>
      <xsl:call-template name="paragraphs">
        <xsl:with-param name="text" select="substring-after($text, $nl)"/>
        <xsl:with-param name="break" select="$break"/>
        <xsl:with-param name="started" select="$started or not($blank)"/>
        <xsl:with-param name="gap" select="$blank and ($started or not($blank))"/>
      </xsl:call-template>
    </xsl:if>
  </xsl:template>

  <!-- A text line that roff must not read as a request. -->
  <xsl:template name="escape-line">
    <xsl:param name="text"/>
    <xsl:if test="starts-with($text, '.') or starts-with($text, &quot;'&quot;)">
      <xsl:text>\&amp;</xsl:text>
    </xsl:if>
    <xsl:call-template name="escape">
      <xsl:with-param name="text" select="$text"/>
    </xsl:call-template>
  </xsl:template>

  <!-- Backslashes become \e, roff's printable backslash. -->
  <xsl:template name="escape">
    <xsl:param name="text"/>
    <xsl:choose>
      <xsl:when test="contains($text, '\')">
        <xsl:value-of select="substring-before($text, '\')"/>
        <xsl:text>\e</xsl:text>
        <xsl:call-template name="escape">
          <xsl:with-param name="text" select="substring-after($text, '\')"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise>
        <xsl:value-of select="$text"/>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>
</xsl:stylesheet>
